"""Hands queued generations to the AI workers' free room, with retries.

Runs in every api_server process; one round at a time runs across all of
them (leo_mesh.db.queue decides a round under a database lock). A round's
jobs for one worker go in one StartGenerations call (leo_mesh.batched_calls),
each job with its own span and its own outcome; the worker takes a job into
a free slot or holds it for the next one (its prefetch). A create, a cancel
and any change the queue hears of (a result, a worker joining or leaving:
QUEUE_CHANNEL) wake the loop at once; polling is the safety net. What
follows a failed send is rules.after_dispatch_error's, except that a worker
without room refuses without using an attempt.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence

import grpc
from opentelemetry.trace import SpanKind

from api_server.outbox import OutboxLoop
from api_server.settings import Settings
from leo.ai.v1 import ai_pb2, ai_pb2_grpc
from leo_mesh import metrics, rules, scheduling, wire
from leo_mesh.batched_calls import RpcBatcher
from leo_mesh.channels import internal_channel
from leo_mesh.db.queue import NotTaken, QueueStore, Start, Taken
from leo_mesh.status import code_name, reason_of
from leo_mesh.telemetry import tracing

log = logging.getLogger("api_server.dispatcher")

AI_SERVICE = ai_pb2.DESCRIPTOR.services_by_name["AIService"].full_name
# How long a cancel waits for the worker to stop the job; past it, the
# worker's next heartbeat tells it to drop the job anyway.
STOP_TIMEOUT_S = 1.0

Stubs = Callable[[str], "ai_pb2_grpc.AIServiceAsyncStub"]


class Workers:
    """The AI workers the dispatcher talks to, by address: one channel and
    one batcher of StartGenerations calls each, made when first needed."""

    def __init__(self, settings: Settings, stubs: Stubs | None = None) -> None:
        self._settings = settings
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, ai_pb2_grpc.AIServiceAsyncStub] = {}
        self._batchers: dict[str, RpcBatcher[ai_pb2.StartGenerationRequest, ai_pb2.StartGenerationOutcome]] = {}
        self._make_stub = stubs or self._channel_stub

    def _channel_stub(self, address: str) -> ai_pb2_grpc.AIServiceAsyncStub:
        channel = self._channels[address] = internal_channel(address)
        return ai_pb2_grpc.AIServiceStub(channel)

    def stub(self, address: str) -> ai_pb2_grpc.AIServiceAsyncStub:
        if address not in self._stubs:
            self._stubs[address] = self._make_stub(address)
        return self._stubs[address]

    def starts(self, address: str) -> RpcBatcher[ai_pb2.StartGenerationRequest, ai_pb2.StartGenerationOutcome]:
        if address not in self._batchers:
            stub, timeout = self.stub(address), self._settings.dispatch_rpc_timeout_s

            async def start_all(jobs: list[ai_pb2.StartGenerationRequest]) -> Sequence[ai_pb2.StartGenerationOutcome]:
                request = ai_pb2.StartGenerationsRequest(generations=jobs)
                return (await stub.StartGenerations(request, timeout=timeout)).outcomes

            self._batchers[address] = RpcBatcher(start_all)
        return self._batchers[address]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
        self._batchers.clear()


class Dispatcher(OutboxLoop):
    def __init__(
        self,
        queue: QueueStore,
        workers: Workers,
        settings: Settings,
        *,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(poll_interval_s=settings.dispatch_poll_interval_s, log=log)
        self._queue = queue
        self._workers = workers
        self._settings = settings
        self._rng = rng

    async def round(self) -> bool:
        """One round: decide, send, record. True if more may be waiting."""
        settings = self._settings
        planned = await self._queue.round(
            limit=settings.dispatch_batch_size,
            max_running_per_owner=settings.max_running_per_owner,
            max_attempts=settings.dispatch_max_attempts,
            start_lease_s=settings.start_lease_s,
            worker_lease_s=settings.worker_lease_s,
        )
        for row in planned.failed:
            log.warning(
                "generation failed",
                extra={"generation_id": str(row.generation_id), "attempt": row.attempts, "reason": row.failure_reason},
            )
        # Stops first: a generation dropped for its deadline may be sent
        # again in this very round, to the same worker.
        await asyncio.gather(*(self.stop_on_worker(address, ids) for address, ids in planned.drops.items()))
        outcomes = await asyncio.gather(*(self._send(start) for start in planned.starts))
        sent = [outcome for outcome in outcomes if outcome is not None]
        if sent:
            try:
                for row in await self._queue.record_starts(sent, completion_deadline_s=settings.completion_deadline_s):
                    log.warning(
                        "generation failed",
                        extra={"generation_id": str(row.generation_id), "attempt": row.attempts},
                    )
            except Exception:
                # The database went away: generations sent but not recorded
                # are sent again when their start lease ends (a worker that
                # took one keeps it and takes the newer token).
                log.exception("dispatch outcomes not recorded", extra={"generations": len(sent)})
                return False
        return planned.full

    async def stop_on_worker(self, address: str, generation_ids: Sequence[str]) -> None:
        """Tell a worker to stop jobs (cancelled, or past their deadline), at
        once; best effort: its next heartbeat's answer tells it too."""
        request = ai_pb2.CancelGenerationsRequest(generation_ids=list(generation_ids))
        try:
            await self._workers.stub(address).CancelGenerations(request, timeout=STOP_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "stop not delivered; the worker's next heartbeat tells it",
                extra={"address": address, "generations": len(generation_ids), "code": exc.code().name},
            )

    async def _send(self, start: Start) -> Taken | NotTaken | None:
        """One job for its worker (sent with the round's others for that
        worker), and what follows it, in a span continuing the create's
        trace (the row keeps its context)."""
        generation_id = str(start.row.generation_id)
        with tracing.span(
            "dispatch",
            parent=start.trace_parent,
            kind=SpanKind.CLIENT,
            generation_id=generation_id,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": AI_SERVICE,
                "rpc.method": "StartGenerations",
                "leo.dispatch.attempt": start.row.attempts,
                "leo.worker.address": start.address,
            },
        ) as span:
            tracing.about_generation(generation_id)
            code, details, outcome = await self._attempt(start)
            metrics.DISPATCH_ATTEMPTS.labels(code).inc()
            tracing.set_code(span, code, details)
            return outcome

    async def _attempt(self, start: Start) -> tuple[str, str | None, Taken | NotTaken | None]:
        """The job's outcome: (its code, its error, what follows). The
        worker's answer for this job says whether it took it. When the whole
        call fails (a timeout, a cut connection) the worker may have taken
        it anyway: nothing is recorded, and after the start lease it is sent
        again to the same worker (which keeps a job it holds), never to
        another one while this worker lives: one job never runs on two."""
        row = start.row
        request = ai_pb2.StartGenerationRequest(
            generation_id=str(row.generation_id),
            prompt=row.prompt,
            model=wire.AI_MODEL.to_wire(row.model),
            width=row.width,
            height=row.height,
            callback_token=start.callback_token,
            kind=wire.AI_KIND.to_wire(row.kind),
            traceparent=tracing.traceparent() or "",
            worker_id=str(start.worker_id),
        )
        try:
            outcome = await self._workers.starts(start.address)(request)
        except grpc.aio.AioRpcError as exc:
            code, details = exc.code().name, exc.details() or ""
            self._unanswered(start, code, details)
            return code, details, None
        except Exception as exc:  # not a status: still unanswered
            log.exception("StartGenerations raised", extra={"generation_id": str(row.generation_id)})
            code, details = grpc.StatusCode.INTERNAL.name, f"{type(exc).__name__}: {exc}"
            self._unanswered(start, code, details)
            return code, details, None
        if outcome.status.code != grpc.StatusCode.OK.value[0]:
            code, details = code_name(outcome.status.code), outcome.status.message
            return code, details, self._failed(start, code, details, reason_of(outcome.status))
        taken = outcome.response
        log.info(
            "dispatched",
            extra={
                "generation_id": str(row.generation_id),
                "attempt": row.attempts,
                "worker": start.address,
                "running": taken.running,
            },
        )
        return "OK", None, Taken(start, taken.running, taken.taken_at_heartbeat)

    def _unanswered(self, start: Start, code: str, details: str) -> None:
        metrics.DISPATCH_RETRIES.labels(code).inc()
        log.warning(
            "start unanswered; sent again to the same worker after the start lease",
            extra={
                "generation_id": str(start.row.generation_id),
                "attempt": start.row.attempts,
                "worker": start.address,
                "error": f"{code}: {details}",
            },
        )

    def _failed(self, start: Start, code: str, details: str, reason: str | None) -> NotTaken:
        row, generation_id = start.row, str(start.row.generation_id)
        error = f"{code}: {details}"
        if not scheduling.counts_as_attempt(reason):
            log.info("worker had no room", extra={"generation_id": generation_id, "worker": start.address})
            return NotTaken(start, error, after_s=0.5 if reason == "WORKER_FULL" else 0.0, counts=False)
        verdict = rules.after_dispatch_error(row.attempts, code, details, self._settings.dispatch_retry, self._rng)
        if isinstance(verdict, rules.RetryLater):
            metrics.DISPATCH_RETRIES.labels(code).inc()
            log.warning(
                "dispatch retry",
                extra={
                    "generation_id": generation_id,
                    "attempt": row.attempts,
                    "error": verdict.error,
                    "delay_s": round(verdict.delay_s, 3),
                },
            )
            return NotTaken(start, verdict.error, after_s=verdict.delay_s)
        log.warning(
            "generation failed",
            extra={"generation_id": generation_id, "attempt": row.attempts, "reason": verdict.reason},
        )
        return NotTaken(start, verdict.error or error, reason=verdict.reason)
