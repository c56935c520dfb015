"""The mock AI: many jobs on asyncio timers, idempotent StartGeneration."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from pathlib import Path

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2

from leo.ai.v1 import ai_pb2, ai_pb2_grpc
from leo_mesh.status import code_name
from tests.clients import statuses, wait_for
from tests.scrape import Scrape


def status_field(pid: int, name: str) -> int:
    """A number of /proc/PID/status (Threads; VmRSS in KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {name} line")


def insert_pending(database_url: str, count: int, token: str) -> list[str]:
    """Generations waiting for the AI, as a dispatch leaves them (not due
    again, callback token set), written straight to the database."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    token_hash = hashlib.sha256(token.encode()).digest()
    with psycopg.connect(database_url) as conn, conn.cursor() as cursor:
        cursor.executemany(
            'INSERT INTO generations (id, "generationId", "updatedAt", prompt, owner, attempts, "callbackTokenHash")'
            " VALUES (gen_random_uuid(), %s, now(), 'many', 'load', 1, %s)",
            [(generation_id, token_hash) for generation_id in ids],
        )
    return ids


async def start_all(address: str, ids: list[str], token: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        ai = ai_pb2_grpc.AIServiceStub(channel)
        limit = asyncio.Semaphore(200)

        async def start(generation_id: str) -> None:
            async with limit:
                request = ai_pb2.StartGenerationRequest(
                    generation_id=generation_id, prompt="many", width=64, height=64, callback_token=token
                )
                await ai.StartGeneration(request, timeout=30)

        await asyncio.gather(*(start(i) for i in ids))


def test_thousands_of_jobs_without_a_thread_each(make_mesh):
    """Half of them run at once (each rendering its image on the few render
    threads, and reporting its progress), the other half wait in the queue,
    reporting their places. The delay outlasts starting them all."""
    env = {
        "MOCK_AI_MIN_DELAY_S": "12",
        "MOCK_AI_MAX_DELAY_S": "13",
        "MOCK_AI_MAX_CONCURRENT_JOBS": "1000",
        "MOCK_AI_IMAGES_PER_GENERATION": "1",
    }
    mesh = make_mesh(env=env, with_envoy=False)
    total, token = 2000, "load-test-token"
    ids = insert_pending(mesh.database_url, total, token)
    pid = mesh.mock_ai.proc.pid
    rss_before = status_field(pid, "VmRSS")
    started = time.monotonic()
    asyncio.run(start_all(f"127.0.0.1:{mesh.ports.ai}", ids, token))
    held = statuses(mesh.database_url).get("PENDING", 0)
    threads, rss = status_field(pid, "Threads"), status_field(pid, "VmRSS")
    print(
        f"mock AI: {held} jobs in flight on {threads} threads ({time.monotonic() - started:.1f} s to start them),"
        f" RSS {rss_before // 1024} -> {rss // 1024} MiB"
    )
    assert held == total and threads < 40
    queued = wait_for(lambda: queue_positions(mesh.database_url), timeout_s=30, what="queue positions")
    assert max(queued) <= total - 1000
    counts = wait_for(
        lambda: (c := statuses(mesh.database_url)).get("PENDING", 0) == 0 and c, timeout_s=60, what="completion"
    )
    assert counts == {"COMPLETE": total}


def queue_positions(database_url: str) -> list[int]:
    with psycopg.connect(database_url) as conn:
        return [p for (p,) in conn.execute('SELECT "queuePosition" FROM generations WHERE "queuePosition" IS NOT NULL')]


def test_repeated_start_does_not_start_a_second_job(make_mesh):
    mesh = make_mesh(env={"MOCK_AI_MIN_DELAY_S": "30", "MOCK_AI_MAX_DELAY_S": "30"}, with_envoy=False)
    with grpc.insecure_channel(f"127.0.0.1:{mesh.ports.ai}") as channel:
        ai = ai_pb2_grpc.AIServiceStub(channel)
        request = ai_pb2.StartGenerationRequest(generation_id=str(uuid.uuid4()), prompt="p", width=64, height=64)
        assert ai.StartGeneration(request, timeout=5).accepted_new is True
        assert ai.StartGeneration(request, timeout=5).accepted_new is False


def test_a_batch_takes_or_refuses_each_job_on_its_own(make_mesh):
    env = {"MOCK_AI_MIN_DELAY_S": "30", "MOCK_AI_MAX_DELAY_S": "30", "MOCK_AI_START_FAILURES_PER_GENERATION": "1"}
    mesh = make_mesh(env=env, with_envoy=False)
    held, fresh = str(uuid.uuid4()), str(uuid.uuid4())

    def job(generation_id: str) -> ai_pb2.StartGenerationRequest:
        return ai_pb2.StartGenerationRequest(generation_id=generation_id, prompt="p", width=64, height=64)

    def reason(status) -> str:
        info = error_details_pb2.ErrorInfo()
        return next((info.reason for detail in status.details if detail.Unpack(info)), "")

    def outcomes(*generation_ids: str) -> list[tuple[str, bool, str]]:
        request = ai_pb2.StartGenerationsRequest(generations=[job(g) for g in generation_ids])
        answer = ai.StartGenerations(request, timeout=5)
        return [(code_name(o.status.code), o.accepted_new, reason(o.status)) for o in answer.outcomes]

    with grpc.insecure_channel(f"127.0.0.1:{mesh.ports.ai}") as channel:
        ai = ai_pb2_grpc.AIServiceStub(channel)
        # Each generation's first ask is refused (injected), in a batch as alone.
        assert outcomes(held) == [("UNAVAILABLE", False, "BACKEND_OVERLOADED")]
        assert outcomes(held, fresh, held) == [
            ("OK", True, ""),
            ("UNAVAILABLE", False, "BACKEND_OVERLOADED"),
            ("OK", False, ""),  # already held: not a second job
        ]
        too_many = ai_pb2.StartGenerationsRequest(generations=[job(str(uuid.uuid4())) for _ in range(1001)])
        with pytest.raises(grpc.RpcError) as refused:
            ai.StartGenerations(too_many, timeout=5)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "generations" in refused.value.details()
    assert Scrape(mesh.metrics_url(mesh.mock_ai)).value("leo_mock_ai_starts_total", outcome="refused") == 2
