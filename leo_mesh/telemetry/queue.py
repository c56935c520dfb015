"""The queue's gauges: what waits, for how long, how busy the AI workers
are and whose generations they run (leo_mesh.metrics: QUEUE_DEPTH,
QUEUE_OLDEST_WAIT, WORKER_SLOTS, OWNER_RUNNING).

A custom collector, read when /metrics is scraped, by the process that
serves it: each series is the database's state, and a series whose label
is gone (an owner with nothing on the workers any more, a pool whose last
worker left) is not exported again. The database is read at most once per
`max_age_s`, however many scrapers ask: one query (leo_mesh.db.queue_metrics).
A failed read keeps the last values (the database may be away).

Depth and oldest wait have a series for every model, kind and priority,
0 when nothing waits, so a query over them (the autoscalers') is never
empty. The pools and owners are those that exist: at most one owner per
generation on a worker, so the owners' series are bounded by the pool's
slots and prefetch, not by the number of API keys.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from leo_mesh import metrics
from leo_mesh.db.queue_metrics import QueueMetrics
from leo_mesh.rules import Kind, Model
from leo_mesh.scheduling import Priority

log = logging.getLogger("leo.metrics")


def families(found: QueueMetrics) -> list[Metric]:
    """The queue's gauges as Prometheus metric families."""
    return [
        metrics.QUEUE_DEPTH.family(
            ((model.value, kind.value, priority.name), found.depth.get((model, kind, priority), 0))
            for model, kind, priority in itertools.product(Model, Kind, Priority)
        ),
        metrics.QUEUE_OLDEST_WAIT.family(
            ((model.value, kind.value), found.oldest_wait_s.get((model, kind), 0.0))
            for model, kind in itertools.product(Model, Kind)
        ),
        metrics.WORKER_SLOTS.family(
            sample
            for (models, kinds), pool in sorted(found.pools.items())
            for sample in (((models, kinds, "busy"), pool.busy), ((models, kinds, "free"), pool.free))
        ),
        metrics.OWNER_RUNNING.family(((owner,), count) for owner, count in sorted(found.owners_running.items())),
    ]


class QueueCollector(Collector):
    def __init__(self, read: Callable[[], QueueMetrics], *, max_age_s: float) -> None:
        """`read`: the numbers now (leo_mesh.db.queue_metrics.read of the database)."""
        self._read = read
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._last: QueueMetrics | None = None

    def describe(self) -> list[Metric]:
        """The families without samples (a registry checks names with them)."""
        return [gauge.family() for gauge in metrics.SCRAPED_GAUGES]

    def collect(self) -> Iterator[Metric]:
        found = self._fresh()
        if found is not None:
            yield from families(found)

    def _fresh(self) -> QueueMetrics | None:
        """The last numbers, read again if older than `max_age_s`; None until one read succeeded."""
        with self._lock:
            now = time.monotonic()
            if self._read_at is None or now - self._read_at >= self._max_age_s:
                self._read_at = now
                try:
                    self._last = self._read()
                except Exception as exc:
                    log.warning("queue metrics not read", extra={"error": str(exc)})
            return self._last
