"""The mock AI in process: a repeated start holds one job; a batch takes or
refuses each job on its own, and refuses a batch too big. Thousands of
jobs on a few threads of a real process: tests/e2e/test_load.py."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.rpc import error_details_pb2

from leo.ai.v1 import ai_pb2, ai_pb2_grpc
from leo_mesh.status import code_name
from tests.inprocess import channel_to, mock_ai
from tests.scrape import Scrape

HELD = {"mock_ai_min_delay_s": 30, "mock_ai_max_delay_s": 30}
# Nothing listens there: the jobs are held, never delivered.
NOWHERE = "127.0.0.1:9"


def job(generation_id: str) -> ai_pb2.StartGenerationRequest:
    return ai_pb2.StartGenerationRequest(generation_id=generation_id, prompt="p", width=64, height=64)


async def test_repeated_start_does_not_start_a_second_job():
    async with mock_ai(NOWHERE, **HELD) as app, channel_to(app) as channel:
        ai = ai_pb2_grpc.AIServiceStub(channel)
        request = job(str(uuid.uuid4()))
        assert (await ai.StartGeneration(request, timeout=5)).accepted_new is True
        assert (await ai.StartGeneration(request, timeout=5)).accepted_new is False


def reason(status) -> str:
    info = error_details_pb2.ErrorInfo()
    return next((info.reason for detail in status.details if detail.Unpack(info)), "")


async def test_a_batch_takes_or_refuses_each_job_on_its_own():
    held, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    async with mock_ai(NOWHERE, **HELD, mock_ai_start_failures_per_generation=1) as app, channel_to(app) as channel:
        ai = ai_pb2_grpc.AIServiceStub(channel)
        metrics = f"http://127.0.0.1:{app.metrics.port}/metrics"
        # Every service of a test process counts in one registry: compare with before.
        refused_before = Scrape(metrics).value("leo_mock_ai_starts_total", outcome="refused")

        async def outcomes(*generation_ids: str) -> list[tuple[str, bool, str]]:
            request = ai_pb2.StartGenerationsRequest(generations=[job(g) for g in generation_ids])
            answer = await ai.StartGenerations(request, timeout=5)
            return [(code_name(o.status.code), o.accepted_new, reason(o.status)) for o in answer.outcomes]

        # Each generation's first ask is refused (injected), in a batch as alone.
        assert await outcomes(held) == [("UNAVAILABLE", False, "BACKEND_OVERLOADED")]
        assert await outcomes(held, fresh, held) == [
            ("OK", True, ""),
            ("UNAVAILABLE", False, "BACKEND_OVERLOADED"),
            ("OK", False, ""),  # already held: not a second job
        ]
        too_many = ai_pb2.StartGenerationsRequest(generations=[job(str(uuid.uuid4())) for _ in range(1001)])
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ai.StartGenerations(too_many, timeout=5)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "generations" in refused.value.details()
        assert Scrape(metrics).value("leo_mock_ai_starts_total", outcome="refused") == refused_before + 2
