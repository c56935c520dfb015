"""The mock AI in process, the reference AI worker: a repeated start holds
one job; a batch takes or refuses each job on its own, and refuses a batch
too big; it runs `slots` jobs, holds `prefetch` more and refuses beyond;
a cancel frees the slot for the next held job at once and keeps no file;
draining gives the held jobs back and refuses new ones. Thousands of jobs
on a few threads of a real process: tests/e2e/test_load.py."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2

from leo.ai.v1 import ai_pb2, ai_pb2_grpc
from leo_mesh.status import code_name
from tests.inprocess import channel_to, media_settings, mock_ai
from tests.scrape import Scrape

# Jobs that outlast the test; stopping the worker does not wait for them.
HELD = {"mock_ai_min_delay_s": 30, "mock_ai_max_delay_s": 30, "mock_ai_drain_timeout_s": 0}
# Nothing listens there: the jobs are held, never delivered.
NOWHERE = "127.0.0.1:9"


def job(generation_id: str) -> ai_pb2.StartGenerationRequest:
    return ai_pb2.StartGenerationRequest(generation_id=generation_id, prompt="p", width=64, height=64)


async def test_repeated_start_does_not_start_a_second_job():
    async with mock_ai(NOWHERE, joins=False, **HELD) as app, channel_to(app) as channel:
        ai = ai_pb2_grpc.AIServiceStub(channel)
        request = job(str(uuid.uuid4()))
        assert (await ai.StartGeneration(request, timeout=5)).accepted_new is True
        assert (await ai.StartGeneration(request, timeout=5)).accepted_new is False


def reason(status) -> str:
    info = error_details_pb2.ErrorInfo()
    return next((info.reason for detail in status.details if detail.Unpack(info)), "")


async def test_a_batch_takes_or_refuses_each_job_on_its_own():
    held, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    async with (
        mock_ai(NOWHERE, joins=False, **HELD, mock_ai_start_failures_per_generation=1) as app,
        channel_to(app) as channel,
    ):
        ai = ai_pb2_grpc.AIServiceStub(channel)
        metrics = f"http://127.0.0.1:{app.metrics.port}/metrics"
        # Every service of a test process counts in one registry: compare with before.
        refused_before = Scrape(metrics).value("leo_mock_ai_starts_total", outcome="refused")

        async def outcomes(*generation_ids: str) -> list[tuple[str, bool, str]]:
            request = ai_pb2.StartGenerationsRequest(generations=[job(g) for g in generation_ids])
            answer = await ai.StartGenerations(request, timeout=5)
            return [(code_name(o.status.code), o.response.accepted_new, reason(o.status)) for o in answer.outcomes]

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


async def start(ai, generation_id: str) -> tuple[str, bool, str]:
    """Its start's code, whether it runs at once, and the error's reason."""
    request = ai_pb2.StartGenerationsRequest(generations=[job(generation_id)])
    (outcome,) = (await ai.StartGenerations(request, timeout=5)).outcomes
    return code_name(outcome.status.code), outcome.response.running, reason(outcome.status)


async def cancel(ai, *generation_ids: str) -> list[str]:
    request = ai_pb2.CancelGenerationsRequest(generation_ids=generation_ids)
    return [code_name(o.status.code) for o in (await ai.CancelGenerations(request, timeout=5)).outcomes]


async def test_it_runs_its_slots_holds_its_prefetch_and_refuses_beyond():
    ids = [str(uuid.uuid4()) for _ in range(4)]
    async with (
        mock_ai(NOWHERE, joins=False, **HELD, mock_ai_slots=2, mock_ai_prefetch=1) as app,
        channel_to(app) as channel,
    ):
        ai = ai_pb2_grpc.AIServiceStub(channel)
        assert [await start(ai, g) for g in ids] == [
            ("OK", True, ""),
            ("OK", True, ""),
            ("OK", False, ""),  # held for the next free slot
            ("RESOURCE_EXHAUSTED", False, "WORKER_FULL"),
        ]
        assert (app.jobs.running, app.jobs.waiting) == (2, 1)
        # A cancel frees a slot: the held job runs at once; the freed room takes one more.
        assert await cancel(ai, ids[0], str(uuid.uuid4())) == ["OK", "NOT_FOUND"]
        assert (app.jobs.running, app.jobs.waiting) == (2, 0)
        assert await start(ai, ids[2]) == ("OK", True, "")  # the same job, running now
        assert await start(ai, ids[3]) == ("OK", False, "")


async def test_a_cancelled_job_keeps_no_file_and_sends_no_result():
    media = media_settings()
    generation_id = str(uuid.uuid4())
    async with (
        mock_ai(NOWHERE, media, joins=False, **HELD, mock_ai_images_per_generation=2) as app,
        channel_to(app) as channel,
    ):
        ai = ai_pb2_grpc.AIServiceStub(channel)
        assert await start(ai, generation_id) == ("OK", True, "")
        # Its files are rendered while it runs: wait for them, then stop it.
        files = media.local_dir / generation_id
        for _ in range(500):
            if files.exists() and len(list(files.iterdir())) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(list(files.iterdir())) == 2
        assert await cancel(ai, generation_id) == ["OK"]
        await asyncio.wait_for(app.jobs.finished(), timeout=5)
        assert not files.exists() or not list(files.iterdir())
        assert len(app.jobs) == 0


async def test_a_draining_worker_gives_back_what_waits_and_takes_nothing_new():
    ids = [str(uuid.uuid4()) for _ in range(3)]
    async with (
        mock_ai(NOWHERE, joins=False, **HELD, mock_ai_slots=1, mock_ai_prefetch=2) as app,
        channel_to(app) as channel,
    ):
        ai = ai_pb2_grpc.AIServiceStub(channel)
        assert [(await start(ai, g))[:2] for g in ids] == [("OK", True), ("OK", False), ("OK", False)]
        assert sorted(app.jobs.drain()) == sorted(ids[1:])
        assert await start(ai, str(uuid.uuid4())) == ("UNAVAILABLE", False, "WORKER_DRAINING")
        assert [job.request.generation_id for job in app.jobs.held()] == ids[:1]  # it finishes what it runs


async def test_a_start_meant_for_another_worker_takes_no_job():
    """A new process at the address of a worker that is gone: the mesh's
    record says the old one holds the job, so this one must not run it."""
    async with mock_ai(NOWHERE, joins=False, **HELD) as app, channel_to(app) as channel:
        ai = ai_pb2_grpc.AIServiceStub(channel)
        meant_elsewhere = job(str(uuid.uuid4()))
        meant_elsewhere.worker_id = str(uuid.uuid4())
        request = ai_pb2.StartGenerationsRequest(generations=[meant_elsewhere])
        (outcome,) = (await ai.StartGenerations(request, timeout=5)).outcomes
        assert (code_name(outcome.status.code), reason(outcome.status)) == ("FAILED_PRECONDITION", "WRONG_WORKER")
        assert len(app.jobs) == 0
        meant_here = job(str(uuid.uuid4()))
        meant_here.worker_id = str(app.heartbeats.worker_id)
        assert (await ai.StartGeneration(meant_here, timeout=5)).accepted_new is True
