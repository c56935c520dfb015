"""The mock AI: many jobs on asyncio timers, idempotent StartGeneration."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from leo.ai.v1 import ai_pb2, ai_pb2_grpc

from tests.clients import api_for, statuses, wait_for


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def test_thousands_of_jobs_without_a_thread_each(make_mesh):
    mesh = make_mesh(env={"MOCK_AI_MIN_DELAY_S": "30", "MOCK_AI_MAX_DELAY_S": "32", "MAX_PENDING_PER_OWNER": "2000"}, with_envoy=False)
    api = api_for(mesh)
    total = 1200
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: api.create(f"job {i}"), range(total)))
    in_flight = lambda: sum(  # noqa: E731
        1 for r in mesh.mock_ai.log_records() if r.get("event") == "start_generation" and not r["refused"]
    )
    wait_for(lambda: in_flight() >= total, timeout_s=30, what="the AI to hold every job")
    held = statuses(mesh.database_url).get("PENDING", 0)
    threads = threads_of(mesh.mock_ai.proc.pid)
    print(f"mock AI: {held} jobs in flight on {threads} threads")
    assert held >= 1000 and threads < 40
    counts = wait_for(
        lambda: (c := statuses(mesh.database_url)).get("PENDING", 0) == 0 and c, timeout_s=90, what="completion"
    )
    assert counts == {"COMPLETE": total}


def test_repeated_start_does_not_start_a_second_job(make_mesh):
    mesh = make_mesh(env={"MOCK_AI_MIN_DELAY_S": "30", "MOCK_AI_MAX_DELAY_S": "30"}, with_envoy=False)
    with grpc.insecure_channel(f"127.0.0.1:{mesh.ports.ai}") as channel:
        ai = ai_pb2_grpc.AIServiceStub(channel)
        request = ai_pb2.StartGenerationRequest(generation_id=str(uuid.uuid4()), prompt="p", width=64, height=64)
        assert ai.StartGeneration(request, timeout=5).accepted_new is True
        assert ai.StartGeneration(request, timeout=5).accepted_new is False
