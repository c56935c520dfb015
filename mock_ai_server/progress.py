"""The mock AI's progress reports: how far each running job is, sent to
CallbackService.ReportProgress in batches.

Jobs say where they are (`report`); the reporter keeps only the latest
report of each job and sends what changed once per interval, so a
generation gets at most one update per interval however fast its job
moves. A report that tells the mesh something it cannot otherwise know
in time goes at once (`at_once`: the start of a job that waited on the
worker for a slot), with whatever else is waiting. (Where a waiting
generation stands is the mesh's queue's to say.)
Reports are best effort: one that fails is not sent again (a later one
supersedes it), except that a job waiting for its last report
(`report_and_wait`) goes on either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Protocol

import grpc

from leo.ai.v1 import ai_pb2
from leo.callback.v1 import callback_pb2, callback_pb2_grpc
from leo_mesh.rules import Progress
from leo_mesh.status import code_name

log = logging.getLogger("mock_ai_server.progress")

# Reports per ReportProgress call (the callback server takes up to 1,000).
BATCH = 500


class Reporting(Protocol):
    """A job as the reporter sees it."""

    request: ai_pb2.StartGenerationRequest


class ProgressReporter:
    def __init__(
        self,
        callbacks: callback_pb2_grpc.CallbackServiceAsyncStub,
        *,
        interval_s: float,
        timeout_s: float,
        enabled: bool = True,
    ) -> None:
        self._callbacks = callbacks
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self.enabled = enabled
        self._pending: dict[str, tuple[Reporting, Progress]] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._refused: dict[str, str] = {}  # generation id → the token refused
        self._wake = asyncio.Event()
        # Set by a report that must not wait out the interval.
        self._now = asyncio.Event()

    def report(self, job: Reporting, progress: Progress, *, at_once: bool = False) -> None:
        """Send this with the next batch (replacing an unsent report of the
        job); `at_once`: that batch goes now, or as soon as the one in
        flight is answered."""
        if self.enabled:
            self._pending[job.request.generation_id] = (job, progress)
            self._wake.set()
            if at_once:
                self._now.set()

    async def report_and_wait(self, job: Reporting, progress: Progress) -> None:
        """Report, and return once that batch was answered (or failed)."""
        if not self.enabled:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job.request.generation_id, []).append(waiter)
        self.report(job, progress)
        await waiter

    def forget(self, generation_id: str) -> None:
        """The job is gone: nothing more to say about it."""
        self._refused.pop(generation_id, None)

    async def run(self) -> None:
        """Send batches until cancelled, at most one per interval unless a
        report is sent at once."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._now.clear()
            await self.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._now.wait(), self._interval_s)

    async def flush(self) -> None:
        """Send what is pending now."""
        pending, self._pending = self._pending, {}
        waiters = {gid: self._waiters.pop(gid) for gid in pending if gid in self._waiters}
        reports = []
        for generation_id, (job, progress) in pending.items():
            token = job.request.callback_token
            if self._refused.get(generation_id) == token:
                continue  # this dispatch is over; a newer one would bring a new token
            reports.append(
                callback_pb2.ProgressReport(
                    generation_id=generation_id, callback_token=token, percent=progress.percent or 0
                )
            )
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
