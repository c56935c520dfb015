"""A job's start, as the mock AI tells the mesh: a job that waited on the
worker for a slot (its prefetch) is known to run only from its first
progress report, so that report goes at once, not with the next batch."""

from __future__ import annotations

import asyncio

from leo.ai.v1 import ai_pb2
from leo_mesh.media.store import open_store
from leo_mesh.rules import Progress
from leo_mesh.scheduling import Phase
from mock_ai_server.jobs import Job, Jobs
from mock_ai_server.progress import ProgressReporter
from mock_ai_server.settings import Settings as MockAiSettings
from tests.inprocess import media_settings
from tests.integration.ai_side import OWNER, dispatched

# An hour between batches: only a report sent at once arrives within a test.
HOUR = 3600


class Recorded:
    """The callback stub, recording which generations each answered ReportProgress call named."""

    def __init__(self, callbacks) -> None:
        self.callbacks = callbacks
        self.calls: list[list[str]] = []

    async def ReportProgress(self, request, **kwargs):
        answer = await self.callbacks.ReportProgress(request, **kwargs)
        self.calls.append([report.generation_id for report in request.reports])
        return answer


async def until(condition) -> None:
    """Until `condition()` holds (the caller's timeout bounds it)."""
    while not condition():
        await asyncio.sleep(0.01)


async def test_a_report_sent_at_once_does_not_wait_out_the_interval(store, callbacks):
    (first_id, first_token), (second_id, second_token) = await dispatched(store, "a"), await dispatched(store, "b")
    recorded = Recorded(callbacks)
    reporter = ProgressReporter(recorded, interval_s=HOUR, timeout_s=5)
    first, second = (
        Job(ai_pb2.StartGenerationRequest(generation_id=str(g), callback_token=t))
        for g, t in [(first_id, first_token), (second_id, second_token)]
    )
    running = asyncio.create_task(reporter.run())
    try:
        reporter.report(first, Progress(percent=10))
        await asyncio.wait_for(until(lambda: len(recorded.calls) == 1), 10)
        reporter.report(second, Progress(percent=0), at_once=True)
        await asyncio.wait_for(until(lambda: len(recorded.calls) == 2), 10)
    finally:
        running.cancel()
    assert recorded.calls == [[str(first_id)], [str(second_id)]]


async def test_a_job_that_waited_for_a_slot_is_running_for_the_mesh_as_its_slot_frees(store, callbacks):
    settings = MockAiSettings(
        mock_ai_slots=1,
        mock_ai_prefetch=1,
        mock_ai_min_delay_s=30,
        mock_ai_max_delay_s=30,
        mock_ai_progress_interval_s=HOUR,
    )
    recorded = Recorded(callbacks)
    jobs = Jobs(settings, recorded, open_store(media_settings()), heartbeat=lambda: 1)
    reporting = asyncio.create_task(jobs.reporter.run())
    (first_id, first_token), (second_id, second_token) = await dispatched(store, "a"), await dispatched(store, "b")

    def job(generation_id, token: str) -> ai_pb2.StartGenerationRequest:
        return ai_pb2.StartGenerationRequest(
            generation_id=str(generation_id), callback_token=token, width=64, height=64
        )

    try:
        assert jobs.start(job(first_id, first_token)).running
        assert not jobs.start(job(second_id, second_token)).running
        await asyncio.wait_for(until(lambda: recorded.calls == [[str(first_id)]]), 10)
        jobs.cancel(str(first_id))  # its slot runs the held job
        await asyncio.wait_for(until(lambda: [str(second_id)] in recorded.calls), 10)
    finally:
        reporting.cancel()
        await jobs.close()
    assert (await store.get(second_id, OWNER)).phase is Phase.RUNNING
