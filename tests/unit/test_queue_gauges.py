"""The queue's collector (leo_mesh.telemetry.queue) over given numbers: the
series it makes of them, how often it reads, what a failed read leaves, and
an endpoint that serves it beside the process's own metrics."""

from __future__ import annotations

import logging

import pytest

from leo_mesh import metrics
from leo_mesh.db.queue_metrics import Pool, QueueMetrics
from leo_mesh.rules import Kind, Model
from leo_mesh.scheduling import Priority
from leo_mesh.telemetry.exposition import MetricsEndpoint
from leo_mesh.telemetry.queue import QueueCollector
from tests.scrape import Scrape

NUMBERS = QueueMetrics(
    depth={(Model.SD, Kind.VIDEO, Priority.HIGH): 3},
    oldest_wait_s={(Model.SD, Kind.VIDEO): 12.5},
    pools={("SD,SDXL", "IMAGE"): Pool(busy=3, free=5)},
    owners_running={"carol": 3},
)


class Reads:
    """Answers given in turn (an exception is raised), counting the reads."""

    def __init__(self, *answers: QueueMetrics | Exception) -> None:
        self.answers = list(answers)
        self.count = 0

    def __call__(self) -> QueueMetrics:
        self.count += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def samples(collector: QueueCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in collector.collect()
        for sample in family.samples
    }


def test_every_model_kind_and_priority_has_a_depth_and_only_present_pools_and_owners_show():
    found = samples(QueueCollector(Reads(NUMBERS), max_age_s=0))
    depths = {labels: value for (name, labels), value in found.items() if name == "leo_queue_depth"}
    assert len(depths) == len(Model) * len(Kind) * len(Priority)
    assert depths[(("kind", "VIDEO"), ("model", "SD"), ("priority", "HIGH"))] == 3
    assert sum(depths.values()) == 3
    waits = {labels: value for (name, labels), value in found.items() if name == "leo_queue_oldest_wait_seconds"}
    assert len(waits) == len(Model) * len(Kind)
    assert waits[(("kind", "VIDEO"), ("model", "SD"))] == 12.5 and sum(waits.values()) == 12.5
    assert {labels: value for (name, labels), value in found.items() if name == "leo_worker_slots"} == {
        (("kinds", "IMAGE"), ("models", "SD,SDXL"), ("state", "busy")): 3,
        (("kinds", "IMAGE"), ("models", "SD,SDXL"), ("state", "free")): 5,
    }
    assert {labels: value for (name, labels), value in found.items() if name == "leo_owner_running"} == {
        (("owner", "carol"),): 3
    }


def test_an_owner_with_nothing_on_the_workers_is_gone_from_the_next_scrape():
    collector = QueueCollector(Reads(NUMBERS, QueueMetrics()), max_age_s=0)
    assert any(name == "leo_owner_running" for name, _ in samples(collector))
    after = samples(collector)
    assert not any(name in {"leo_owner_running", "leo_worker_slots"} for name, _ in after)
    assert sum(value for (name, _), value in after.items() if name == "leo_queue_depth") == 0


def test_a_failed_read_keeps_the_last_numbers_and_says_so(caplog):
    reads = Reads(RuntimeError("no database"), NUMBERS, RuntimeError("no database"))
    collector = QueueCollector(reads, max_age_s=0)
    with caplog.at_level(logging.WARNING, logger="leo.metrics"):
        assert samples(collector) == {}  # nothing read yet: no series
    assert "queue metrics not read" in caplog.text
    first = samples(collector)
    assert first and samples(collector) == first
    assert reads.count == 3


def test_reads_at_most_once_per_max_age():
    reads = Reads(NUMBERS, QueueMetrics())
    collector = QueueCollector(reads, max_age_s=3600)
    assert samples(collector) == samples(collector)
    assert reads.count == 1


def test_describe_names_the_catalogued_gauges_without_reading():
    reads = Reads()
    described = QueueCollector(reads, max_age_s=0).describe()
    assert [family.name for family in described] == [gauge.name for gauge in metrics.SCRAPED_GAUGES]
    assert all(not family.samples for family in described)
    assert reads.count == 0


@pytest.fixture
def endpoints():
    started: list[MetricsEndpoint] = []

    def start(collectors) -> str:
        endpoint = MetricsEndpoint("127.0.0.1", 0, collectors=collectors).start()
        started.append(endpoint)
        return f"http://127.0.0.1:{endpoint.port}/metrics"

    yield start
    for endpoint in started:
        endpoint.stop()


def test_an_endpoint_serves_its_own_collectors_beside_the_process_metrics(endpoints):
    one = Scrape(endpoints([QueueCollector(Reads(NUMBERS), max_age_s=3600)]))
    other = Scrape(endpoints([QueueCollector(Reads(QueueMetrics()), max_age_s=3600)]))
    for scraped in (one, other):
        assert scraped.has("leo_dispatch_timeouts_total")
    assert one.value("leo_owner_running", owner="carol") == 3
    assert not other.has("leo_owner_running")
