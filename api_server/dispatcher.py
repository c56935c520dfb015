"""Sends due PENDING generations to the AI backend, with retries.

Runs in every api_server process. Rows are claimed with FOR UPDATE SKIP
LOCKED (GenerationStore.claim_due), so replicas share the work and, when
nothing fails, each generation is sent exactly once. A round's jobs go to
the AI in one StartGenerations call (leo_mesh.batched_calls), each job with its
own span and its own outcome. A create wakes the loop at once; polling is
the safety net for retries, deadlines and other replicas' leftovers. What
follows a failed send is rules.after_dispatch_error's.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence

import grpc
from opentelemetry.trace import SpanKind

from api_server.outbox import OutboxLoop
from api_server.settings import Settings
from leo.ai.v1 import ai_pb2, ai_pb2_grpc
from leo_mesh import metrics, rules, wire
from leo_mesh.batched_calls import RpcBatcher
from leo_mesh.db.generations import Claimed, Failure, GenerationStore, Wait
from leo_mesh.status import code_name
from leo_mesh.telemetry import tracing

log = logging.getLogger("api_server.dispatcher")

AI_SERVICE = ai_pb2.DESCRIPTOR.services_by_name["AIService"].full_name


class Dispatcher(OutboxLoop):
    def __init__(
        self,
        store: GenerationStore,
        ai: ai_pb2_grpc.AIServiceAsyncStub,
        settings: Settings,
        *,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(poll_interval_s=settings.dispatch_poll_interval_s, log=log)
        self._store = store
        self._settings = settings

        async def start_all(jobs: list[ai_pb2.StartGenerationRequest]) -> Sequence[ai_pb2.StartGenerationOutcome]:
            request = ai_pb2.StartGenerationsRequest(generations=jobs)
            answer = await ai.StartGenerations(request, timeout=settings.dispatch_rpc_timeout_s, wait_for_ready=True)
            return answer.outcomes

        self._starts: RpcBatcher[ai_pb2.StartGenerationRequest, ai_pb2.StartGenerationOutcome] = RpcBatcher(start_all)
        self._rng = rng

    async def round(self) -> bool:
        return await self.dispatch_due()

    async def dispatch_due(self) -> bool:
        """One round: claim due rows and send them. True if the batch was full."""
        settings = self._settings
        claimed, timed_out = await self._store.claim_due(
            limit=settings.dispatch_batch_size,
            lease_s=settings.claim_lease_s,
            max_attempts=settings.dispatch_max_attempts,
        )
        for row in timed_out:
            log.warning(
                "generation failed",
                extra={"generation_id": str(row.generation_id), "attempt": row.attempts, "reason": row.failure_reason},
            )
        if claimed:
            outcomes = await asyncio.gather(*(self._send(item) for item in claimed))
            waits = [outcome for outcome in outcomes if isinstance(outcome, Wait)]
            failures = [outcome for outcome in outcomes if isinstance(outcome, Failure)]
            try:
                await self._store.record_dispatches(waits, failures)
            except Exception:
                # The database went away: the claims' leases bring these
                # generations back, with this attempt counted.
                log.exception("dispatch outcomes not recorded", extra={"generations": len(claimed)})
                return False
        return len(claimed) + len(timed_out) >= settings.dispatch_batch_size

    async def _send(self, item: Claimed) -> Wait | Failure:
        """One job for the AI (sent with the round's others), and what
        follows it for the generation, in a span continuing the create's
        trace (the row keeps its context)."""
        generation_id = str(item.row.generation_id)
        with tracing.span(
            "dispatch",
            parent=item.trace_parent,
            kind=SpanKind.CLIENT,
            generation_id=generation_id,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": AI_SERVICE,
                "rpc.method": "StartGenerations",
                "leo.dispatch.attempt": item.row.attempts,
            },
        ) as span:
            tracing.about_generation(generation_id)
            code, details, outcome = await self._attempt(item)
            metrics.DISPATCH_ATTEMPTS.labels(code).inc()
            tracing.set_code(span, code, details)
            return outcome

    async def _attempt(self, item: Claimed) -> tuple[str, str | None, Wait | Failure]:
        """The job's outcome: (its code, its error, what follows). Whatever
        the call raises is this attempt's failure, no other generation's."""
        row, settings = item.row, self._settings
        request = ai_pb2.StartGenerationRequest(
            generation_id=str(row.generation_id),
            prompt=row.prompt,
            model=wire.AI_MODEL.to_wire(row.model),
            width=row.width,
            height=row.height,
            callback_token=item.callback_token,
            kind=wire.AI_KIND.to_wire(row.kind),
            traceparent=tracing.traceparent() or "",
        )
        try:
            outcome = await self._starts(request)
        except grpc.aio.AioRpcError as exc:
            code, details = exc.code().name, exc.details() or ""
            return code, details, self._failed(item, code, details)
        except Exception as exc:  # not a status: still this attempt's failure
            log.exception("StartGenerations raised", extra={"generation_id": str(row.generation_id)})
            code, details = grpc.StatusCode.INTERNAL.name, f"{type(exc).__name__}: {exc}"
            return code, details, self._failed(item, code, details)
        if outcome.status.code != grpc.StatusCode.OK.value[0]:
            code, details = code_name(outcome.status.code), outcome.status.message
            return code, details, self._failed(item, code, details)
        log.info("dispatched", extra={"generation_id": str(row.generation_id), "attempt": row.attempts})
        return "OK", None, Wait(row.id, row.attempts, settings.completion_deadline_s)

    def _failed(self, item: Claimed, code: str, details: str) -> Wait | Failure:
        row, generation_id = item.row, str(item.row.generation_id)
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
            return Wait(row.id, row.attempts, verdict.delay_s, verdict.error)
        log.warning(
            "generation failed",
            extra={"generation_id": generation_id, "attempt": row.attempts, "reason": verdict.reason},
        )
        return Failure(row.id, row.attempts, verdict.reason, verdict.error)
