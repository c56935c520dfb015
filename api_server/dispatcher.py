"""Sends due PENDING generations to the AI backend, with retries.

Runs in every api_server process. Rows are claimed with FOR UPDATE SKIP
LOCKED (see GenerationStore.claim_due), so replicas share the work and, when
nothing fails, each generation is sent exactly once. A create wakes the loop
at once; polling is the safety net for retries, deadlines and other replicas'
leftovers.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from leo.ai.v1 import ai_pb2, ai_pb2_grpc

from api_server.backoff import backoff_delay
from api_server.outbox import OutboxLoop
from api_server.settings import Settings
from leo_mesh.db.generations import GenerationStore
from leo_mesh.db.models import CoreModel, Generation
from leo_mesh.status import is_retryable

log = logging.getLogger("api_server.dispatcher")

AI_MODELS = {CoreModel.SD: ai_pb2.MODEL_SD, CoreModel.SDXL: ai_pb2.MODEL_SDXL}


class Dispatcher(OutboxLoop):
    def __init__(self, store: GenerationStore, ai: ai_pb2_grpc.AIServiceStub, settings: Settings) -> None:
        super().__init__(poll_interval_s=settings.dispatch_poll_interval_s, log=log)
        self._store = store
        self._ai = ai
        self._settings = settings

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
            await asyncio.gather(*(self._send(row, token) for row, token in claimed))
        return len(claimed) + len(timed_out) >= settings.dispatch_batch_size

    async def _send(self, row: Generation, callback_token: str) -> None:
        settings = self._settings
        generation_id = str(row.generation_id)
        attempt = row.attempts
        request = ai_pb2.StartGenerationRequest(
            generation_id=generation_id,
            prompt=row.prompt,
            model=AI_MODELS[row.core_model],
            width=row.image_width,
            height=row.image_height,
            callback_token=callback_token,
        )
        try:
            await self._ai.StartGeneration(request, timeout=settings.dispatch_rpc_timeout_s)
        except grpc.aio.AioRpcError as exc:
            await self._failed(row, attempt, exc.code(), exc.details() or "")
            return
        await self._store.mark_dispatched(row.id, attempt, deadline_s=settings.completion_deadline_s)
        log.info("dispatched", extra={"generation_id": generation_id, "attempt": attempt})

    async def _failed(self, row: Generation, attempt: int, code: grpc.StatusCode, details: str) -> None:
        settings = self._settings
        generation_id = str(row.generation_id)
        error = f"{code.name}: {details}"
        if not is_retryable(code):
            reason = f"the AI backend rejected the generation ({error})"
        elif attempt >= settings.dispatch_max_attempts:
            reason = f"the AI backend could not be reached after {attempt} attempts (last error {error})"
        else:
            delay = backoff_delay(attempt, base_s=settings.dispatch_backoff_base_s, cap_s=settings.dispatch_backoff_cap_s)
            await self._store.schedule_retry(row.id, attempt, error=error, delay_s=delay)
            log.warning(
                "dispatch retry",
                extra={"generation_id": generation_id, "attempt": attempt, "error": error, "delay_s": round(delay, 3)},
            )
            return
        await self._store.fail(row.id, attempt, reason=reason, error=error)
        log.warning("generation failed", extra={"generation_id": generation_id, "attempt": attempt, "reason": reason})
