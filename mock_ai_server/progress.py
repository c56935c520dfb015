"""The mock AI's progress reports: where each job stands, sent to
CallbackService.ReportProgress in batches.

Jobs say where they are (`report`); the reporter keeps only the latest
report of each job and sends what changed once per interval, so a
generation gets at most one update per interval however fast its job
moves. Queued jobs are reported when their place changes: every change
near the front, only a drop of a tenth or more further back, so a long
queue does not send a report per job each time one starts. Reports are
best effort: one that fails is not sent again (a later one supersedes it),
except that a job waiting for its last report (`report_and_wait`) goes on
either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol

import grpc

from leo.ai.v1 import ai_pb2
from leo.callback.v1 import callback_pb2, callback_pb2_grpc
from leo_mesh.rules import Progress
from leo_mesh.status import code_name

log = logging.getLogger("mock_ai_server.progress")

# Reports per ReportProgress call (the callback server takes up to 1,000).
BATCH = 500
# Every change of place is reported from here to the front.
NEAR_FRONT = 10


class Reporting(Protocol):
    """A job as the reporter sees it."""

    request: ai_pb2.StartGenerationRequest


def worth_reporting(position: int, last_reported: int | None) -> bool:
    """Whether a queued job's new place is worth a report."""
    if last_reported is None:
        return True
    if position == last_reported:
        return False
    return position <= NEAR_FRONT or position <= last_reported * 0.9


class ProgressReporter:
    def __init__(
        self,
        callbacks: callback_pb2_grpc.CallbackServiceAsyncStub,
        *,
        interval_s: float,
        timeout_s: float,
        enabled: bool = True,
        queued: Callable[[], Iterable[tuple[Reporting, int]]] = lambda: (),
    ) -> None:
        """`queued`: the queued jobs and their places, read when the queue moved."""
        self._callbacks = callbacks
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self.enabled = enabled
        self._queued = queued
        self._pending: dict[str, tuple[Reporting, Progress]] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._last_place: dict[str, int] = {}
        self._refused: dict[str, str] = {}  # generation id → the token refused
        self._queue_moved = False
        self._wake = asyncio.Event()

    def report(self, job: Reporting, progress: Progress) -> None:
        """Send this with the next batch (replacing an unsent report of the job)."""
        if self.enabled:
            self._pending[job.request.generation_id] = (job, progress)
            self._wake.set()

    async def report_and_wait(self, job: Reporting, progress: Progress) -> None:
        """Report, and return once that batch was answered (or failed)."""
        if not self.enabled:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job.request.generation_id, []).append(waiter)
        self.report(job, progress)
        await waiter

    def queue_moved(self) -> None:
        """Queued jobs have new places."""
        if self.enabled:
            self._queue_moved = True
            self._wake.set()

    def forget(self, generation_id: str) -> None:
        """The job is gone: nothing more to say about it."""
        self._last_place.pop(generation_id, None)
        self._refused.pop(generation_id, None)

    async def run(self) -> None:
        """Send batches until cancelled, at most one per interval."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            await asyncio.sleep(self._interval_s)

    def _take_queue_places(self) -> None:
        if not self._queue_moved:
            return
        self._queue_moved = False
        for job, place in self._queued():
            generation_id = job.request.generation_id
            if generation_id not in self._pending and worth_reporting(place, self._last_place.get(generation_id)):
                self._last_place[generation_id] = place
                self._pending[generation_id] = (job, Progress(queue_position=place))

    async def flush(self) -> None:
        """Send what is pending now."""
        self._take_queue_places()
        pending, self._pending = self._pending, {}
        waiters = {gid: self._waiters.pop(gid) for gid in pending if gid in self._waiters}
        reports = []
        for generation_id, (job, progress) in pending.items():
            token = job.request.callback_token
            if self._refused.get(generation_id) == token:
                continue  # this dispatch is over; a newer one would bring a new token
            report = callback_pb2.ProgressReport(generation_id=generation_id, callback_token=token)
            if progress.percent is not None:
                report.percent = progress.percent
            else:
                report.queue_position = progress.queue_position or 1
            reports.append(report)
        try:
            for start in range(0, len(reports), BATCH):
                await self._send(reports[start : start + BATCH])
        finally:
            for futures in waiters.values():
                for waiter in futures:
                    if not waiter.done():
                        waiter.set_result(None)

    async def _send(self, reports: list[callback_pb2.ProgressReport]) -> None:
        request = callback_pb2.ReportProgressRequest(reports=reports)
        try:
            answer = await self._callbacks.ReportProgress(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            log.warning("progress not reported", extra={"reports": len(reports), "code": exc.code().name})
            return
        if len(answer.outcomes) != len(reports):
            log.warning("progress answer without an outcome per report", extra={"reports": len(reports)})
            return
        failed: Counter[str] = Counter()
        for report, outcome in zip(reports, answer.outcomes, strict=True):
            code = code_name(outcome.status.code)
            if code == grpc.StatusCode.UNAUTHENTICATED.name:  # not this dispatch's to report any more
                self._refused[report.generation_id] = report.callback_token
            elif code != grpc.StatusCode.OK.name:
                failed[code] += 1
        for code, count in failed.items():
            log.warning("progress not reported", extra={"reports": count, "code": code})
