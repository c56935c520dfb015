"""Load that only a real process shows: thousands of jobs on one AI worker's
few threads, and 1,000 watchers on one api_server process, each process's
threads and memory read from /proc. One mesh, whose worker holds each job
long enough for every job to be started, or every watcher open, before the
first result; the two tests are owners of their own."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest

from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from tests import rows
from tests.clients import wait_for

PENDING, COMPLETE = generation_pb2.STATUS_PENDING, generation_pb2.STATUS_COMPLETE
SLOTS = PREFETCH = 1000


@pytest.fixture(scope="module")
def mesh(make_mesh):
    env = {
        "MOCK_AI_MIN_DELAY_S": "12",
        "MOCK_AI_MAX_DELAY_S": "13",
        "MOCK_AI_SLOTS": str(SLOTS),
        "MOCK_AI_PREFETCH": str(PREFETCH),
        "MOCK_AI_IMAGES_PER_GENERATION": "1",
        "MAX_PENDING_PER_OWNER": "3000",
        "MAX_RUNNING_PER_OWNER": "3000",
        "DISPATCH_BATCH_SIZE": "500",
    }
    return make_mesh(env=env, with_envoy=False)


# --- the AI worker ---


def status_field(pid: int, name: str) -> int:
    """A number of /proc/PID/status (Threads; VmRSS in KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {name} line")


def test_thousands_of_jobs_without_a_thread_each(mesh):
    """The mesh fills the worker: its slots run (each rendering its image on
    the few render threads, and reporting its progress), its prefetch waits
    there for a slot; the rest wait in the mesh's queue. The delay outlasts
    handing them all out."""
    total = SLOTS + PREFETCH + 500
    key = mesh.create_api_key("load")
    pid = mesh.mock_ai.proc.pid
    rss_before = status_field(pid, "VmRSS")
    started = time.monotonic()
    ids = asyncio.run(create_generations(mesh.api_address, key, total))
    phases = wait_for(
        lambda: (
            (found := rows.phases(mesh.database_url, ids)).get("RUNNING") == SLOTS
            and found.get("HELD") == PREFETCH
            and found
        ),
        timeout_s=30,
        what="the worker's slots and prefetch full",
    )
    threads, rss = status_field(pid, "Threads"), status_field(pid, "VmRSS")
    print(
        f"AI worker: {SLOTS + PREFETCH} jobs held on {threads} threads ({time.monotonic() - started:.1f} s to"
        f" hand them out), RSS {rss_before // 1024} -> {rss // 1024} MiB"
    )
    # Never more than the worker's room: the rest wait in the mesh's queue.
    assert phases == {"RUNNING": SLOTS, "HELD": PREFETCH, "QUEUED": total - SLOTS - PREFETCH}
    assert threads < 40
    counts = wait_for(
        lambda: (c := rows.statuses(mesh.database_url, owner="load")).get("PENDING", 0) == 0 and c,
        timeout_s=90,
        what="completion",
    )
    assert counts == {"COMPLETE": total}
    assert rows.attempts(mesh.database_url, owner="load") == [1] * total


# --- 1,000 watchers on one api_server process ---

GENERATIONS, WATCHERS_EACH, CHANNELS = 200, 5, 10
# What one more open watch may cost the api_server, at most.
RSS_BUDGET_PER_WATCHER_KIB = 64


async def create_generations(address: str, key: str, count: int) -> list[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        metadata = [("authorization", f"Bearer {key}")]
        created = await asyncio.gather(
            *(
                stub.CreateGeneration(
                    generation_pb2.CreateGenerationRequest(prompt=f"watched {i}", width=64, height=64),
                    metadata=metadata,
                    timeout=20,
                )
                for i in range(count)
            )
        )
    return [response.generation.generation_id for response in created]


def pending_then_complete(statuses: list[int]) -> bool:
    """PENDING first (more PENDING messages as attempts are counted), COMPLETE last."""
    return len(statuses) >= 2 and set(statuses[:-1]) == {PENDING} and statuses[-1] == COMPLETE


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


async def test_a_thousand_watchers_on_one_process(mesh):
    key = await asyncio.to_thread(mesh.create_api_key, "crowd")
    ids = await create_generations(mesh.api_address, key, GENERATIONS)
    metadata = [("authorization", f"Bearer {key}")]
    pid = mesh.api_servers[0].proc.pid
    before = rss_kib(pid)

    channels = [grpc.aio.insecure_channel(mesh.api_address) for _ in range(CHANNELS)]
    stubs = [generation_pb2_grpc.GenerationServiceStub(channel) for channel in channels]
    watchers_count = GENERATIONS * WATCHERS_EACH
    opened = 0
    all_open = asyncio.Event()

    async def watch_one(index: int) -> list[int]:
        nonlocal opened
        request = generation_pb2.WatchGenerationRequest(generation_id=ids[index % GENERATIONS])
        statuses = []
        async for message in stubs[index % CHANNELS].WatchGeneration(request, metadata=metadata, timeout=60):
            statuses.append(message.generation.status)
            if len(statuses) == 1:
                opened += 1
                if opened == watchers_count:
                    all_open.set()
        return statuses

    try:
        started = time.monotonic()
        watchers = [asyncio.create_task(watch_one(index)) for index in range(watchers_count)]
        await asyncio.wait_for(all_open.wait(), timeout=30)
        opened_s = time.monotonic() - started
        during = rss_kib(pid)
        results = await asyncio.wait_for(asyncio.gather(*watchers), timeout=45)
    finally:
        for channel in channels:
            await channel.close()
    after = rss_kib(pid)

    assert all(pending_then_complete(statuses) for statuses in results)
    per_watcher = (during - before) / watchers_count
    print(
        f"\n{watchers_count} watchers on {GENERATIONS} generations: all open in {opened_s:.2f} s; api_server RSS "
        f"{before / 1024:.1f} MiB before, {during / 1024:.1f} MiB with all open "
        f"({per_watcher:.1f} KiB per watcher), {after / 1024:.1f} MiB after they ended"
    )
    assert per_watcher < RSS_BUDGET_PER_WATCHER_KIB
