"""Worker processes' metrics add up on the supervisor's one port
(prometheus_client's multiprocess mode), and a dead worker's gauges are
forgotten while its counts stay in the sums."""

from __future__ import annotations

import multiprocessing
import os

from leo_mesh import metrics
from leo_mesh.db.queue_metrics import QueueMetrics
from leo_mesh.telemetry.exposition import worker_metrics
from leo_mesh.telemetry.queue import QueueCollector
from tests.scrape import Scrape


def a_worker(watches: int) -> None:
    """What a worker holds: open watches (a live sum) and a count."""
    metrics.WATCHES_OPEN.set(watches)
    metrics.DISPATCH_TIMEOUTS.inc(watches)


def test_workers_add_up_and_a_dead_one_is_forgotten_but_its_counts_are_not():
    context = multiprocessing.get_context("spawn")  # as leo_mesh.workers starts them
    with worker_metrics("127.0.0.1", 0) as served:
        workers = [context.Process(target=a_worker, args=(n,)) for n in (2, 3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
            assert worker.exitcode == 0
        url = f"http://127.0.0.1:{served.endpoint.port}/metrics"
        both = Scrape(url)
        assert both.value("leo_watch_streams_open") == 5
        assert both.value("leo_dispatch_timeouts_total") == 5

        assert workers[0].pid is not None
        served.worker_exited(workers[0].pid)
        after = Scrape(url)
        assert after.value("leo_watch_streams_open") == 3
        assert after.value("leo_dispatch_timeouts_total") == 5
        directory = served.directory
    assert not os.path.exists(directory)


def test_the_supervisor_serves_its_own_collectors_beside_the_sums():
    queue = QueueCollector(lambda: QueueMetrics(owners_running={"dave": 2}), max_age_s=0)
    with worker_metrics("127.0.0.1", 0, [queue]) as served:
        scraped = Scrape(f"http://127.0.0.1:{served.endpoint.port}/metrics")
    assert scraped.value("leo_owner_running", owner="dave") == 2
    assert scraped.has("leo_queue_depth")
