"""The queue's gauges of an in-process api_server (a stub AI; dispatch rounds
driven by the test), read from the database when /metrics is scraped: what
waits by model, kind and priority, the oldest wait, the live workers' slots
by pool and state, and the generations on workers by owner."""

from __future__ import annotations

import asyncio
import functools
import itertools
import time

from leo.generation.v1 import generation_pb2 as pb
from leo_mesh.db.keys import KeyStore
from leo_mesh.scheduling import Priority
from tests import rows
from tests.inprocess import Client, api_server, channel_to, new_key
from tests.scrape import Scrape

ALL_DEPTHS = {
    labels: 0.0 for labels in itertools.product(("SD", "SDXL"), ("IMAGE", "VIDEO"), ("LOW", "NORMAL", "HIGH"))
}


def scrape(app) -> Scrape:
    return Scrape(f"http://127.0.0.1:{app.metrics.port}/metrics")


def series(found: Scrape, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """Every sample of `name`, by the values of `labels`."""
    return {
        tuple(sample.labels[label] for label in labels): sample.value for sample in found.samples if sample.name == name
    }


async def test_the_queue_gauges_follow_the_queue_and_the_pool(database_url):
    async with api_server(database_url, background=False, fake_worker=False, queue_metrics_max_age_s=0) as app:
        alice = Client(channel_to(app), await new_key(app, "alice"))
        bob = Client(channel_to(app), await KeyStore(app.db).create("bob", max_priority=Priority.HIGH))
        oldest = await alice.create(model=pb.MODEL_SD)
        await alice.create(model=pb.MODEL_SD)
        await bob.create(model=pb.MODEL_SD, priority=pb.PRIORITY_LOW)
        video = await bob.create(model=pb.MODEL_SDXL, kind=pb.KIND_VIDEO, priority=pb.PRIORITY_HIGH)
        started = time.monotonic()
        await asyncio.to_thread(rows.backdate, database_url, oldest.generation_id, 90)
        await asyncio.to_thread(rows.backdate, database_url, video.generation_id, 30)

        queued = scrape(app)
        elapsed = time.monotonic() - started
        assert series(queued, "leo_queue_depth", "model", "kind", "priority") == ALL_DEPTHS | {
            ("SD", "IMAGE", "NORMAL"): 2,
            ("SD", "IMAGE", "LOW"): 1,
            ("SDXL", "VIDEO", "HIGH"): 1,
        }
        waits = series(queued, "leo_queue_oldest_wait_seconds", "model", "kind")
        assert set(waits) == set(itertools.product(("SD", "SDXL"), ("IMAGE", "VIDEO")))
        assert 90 <= waits[("SD", "IMAGE")] <= 90 + elapsed
        assert 30 <= waits[("SDXL", "VIDEO")] <= 30 + elapsed
        assert waits[("SD", "VIDEO")] == waits[("SDXL", "IMAGE")] == 0
        # No worker yet: no slots, and nothing runs.
        assert not queued.has("leo_worker_slots")
        assert not queued.has("leo_owner_running")

        # An image worker (2 slots and 1 prefetch), a draining video worker,
        # and one whose lease has ended.
        await asyncio.to_thread(
            rows.add_worker, database_url, slots=2, prefetch=1, models="{SD}", kinds="{IMAGE}", address="image:1"
        )
        video = {"models": "{SDXL,SD}", "kinds": "{VIDEO}", "address": "video:1", "draining": True}
        await asyncio.to_thread(functools.partial(rows.add_worker, database_url, slots=4, **video))
        await asyncio.to_thread(rows.add_worker, database_url, slots=8, kinds="{IMAGE}", address="gone:1", lease_s=-1)
        joined = scrape(app)
        assert series(joined, "leo_worker_slots", "models", "kinds", "state") == {
            ("SD", "IMAGE", "busy"): 0,
            ("SD", "IMAGE", "free"): 2,
            ("SD,SDXL", "VIDEO", "busy"): 0,
            ("SD,SDXL", "VIDEO", "free"): 0,
        }

        # The image worker takes the three SD images: two run in its slots,
        # one waits in its prefetch. The draining worker takes no video.
        await app.dispatcher.round()
        dispatched = scrape(app)
        assert series(dispatched, "leo_queue_depth", "model", "kind", "priority") == ALL_DEPTHS | {
            ("SDXL", "VIDEO", "HIGH"): 1
        }
        waits = series(dispatched, "leo_queue_oldest_wait_seconds", "model", "kind")
        assert waits[("SD", "IMAGE")] == 0 and waits[("SDXL", "VIDEO")] >= 30
        assert series(dispatched, "leo_worker_slots", "models", "kinds", "state") == {
            ("SD", "IMAGE", "busy"): 2,
            ("SD", "IMAGE", "free"): 0,
            ("SD,SDXL", "VIDEO", "busy"): 0,
            ("SD,SDXL", "VIDEO", "free"): 0,
        }
        assert series(dispatched, "leo_owner_running", "owner") == {("alice",): 2, ("bob",): 1}


async def test_the_database_is_read_at_most_once_per_max_age(database_url):
    async with api_server(database_url, background=False, fake_worker=False, queue_metrics_max_age_s=3600) as app:
        client = Client(channel_to(app), await new_key(app))
        assert scrape(app).value("leo_queue_depth") == 0
        await client.create()
        # The first read stands until it is an hour old.
        assert scrape(app).value("leo_queue_depth") == 0
