"""AIService: a stand-in for the slow AI backend."""

from __future__ import annotations

import logging
import random
import uuid
from collections import Counter

from leo.ai.v1 import ai_pb2, ai_pb2_grpc
from leo_mesh import metrics
from leo_mesh.batched_calls import answer_each
from leo_mesh.errors import (
    BackendOverloaded,
    FieldViolation,
    InvalidArgument,
    WorkerDraining,
    WorkerFull,
    WrongWorker,
)
from leo_mesh.telemetry import tracing
from mock_ai_server.jobs import Jobs
from mock_ai_server.settings import Settings

log = logging.getLogger("mock_ai_server.service")

# Jobs one StartGenerations call may carry.
MAX_JOBS_PER_CALL = 1000


class AIService(ai_pb2_grpc.AIServiceServicer):
    def __init__(self, jobs: Jobs, settings: Settings, worker_id: uuid.UUID, rng: random.Random | None = None) -> None:
        self._jobs = jobs
        self._worker_id = str(worker_id)
        self._settings = settings
        self._rng = rng or random.Random()
        self._calls: Counter[str] = Counter()  # StartGeneration requests per generation

    async def StartGeneration(self, request, context):
        return await self._start(request)

    async def StartGenerations(self, request, context):
        if len(request.generations) > MAX_JOBS_PER_CALL:
            raise InvalidArgument([FieldViolation("generations", f"must hold at most {MAX_JOBS_PER_CALL} jobs")])
        outcomes = await answer_each(
            request.generations,
            self._start_one_of_many,
            outcome=ai_pb2.StartGenerationOutcome,
            span_name="start generation",
            traceparent=lambda job: job.traceparent,
        )
        return ai_pb2.StartGenerationsResponse(outcomes=outcomes)

    async def _start_one_of_many(
        self, request: ai_pb2.StartGenerationRequest
    ) -> dict[str, ai_pb2.StartGenerationResponse]:
        """A job of a StartGenerations call: its outcome's payload."""
        return {"response": await self._start(request)}

    async def CancelGenerations(self, request, context):
        if len(request.generation_ids) > MAX_JOBS_PER_CALL:
            raise InvalidArgument([FieldViolation("generation_ids", f"must hold at most {MAX_JOBS_PER_CALL} ids")])
        outcomes = await answer_each(request.generation_ids, self._cancel, outcome=ai_pb2.CancelGenerationOutcome)
        return ai_pb2.CancelGenerationsResponse(outcomes=outcomes)

    async def _cancel(self, generation_id: str) -> None:
        tracing.about_generation(generation_id)
        await self._jobs.stop(generation_id)

    async def _start(self, request: ai_pb2.StartGenerationRequest) -> ai_pb2.StartGenerationResponse:
        """Take the job (Jobs.start); BackendOverloaded when a failure is injected."""
        generation_id = request.generation_id
        tracing.about_generation(generation_id)
        if request.worker_id and request.worker_id != self._worker_id:
            # Meant for the process this address had before: the mesh has its
            # job on record there, and runs it elsewhere once that one is gone.
            metrics.MOCK_AI_STARTS.labels("wrong_worker").inc()
            raise WrongWorker(request.worker_id)
        self._calls[generation_id] += 1
        calls = self._calls[generation_id]
        settings = self._settings
        injected = calls <= settings.mock_ai_start_failures_per_generation or (
            self._rng.random() < settings.mock_ai_start_failure_rate
        )
        log.info("start_generation", extra={"generation_id": generation_id, "call": calls, "refused": injected})
        if injected:
            metrics.MOCK_AI_STARTS.labels("refused").inc()
            raise BackendOverloaded()
        try:
            taken = self._jobs.start(request)
        except (WorkerFull, WorkerDraining):
            metrics.MOCK_AI_STARTS.labels("no_room").inc()
            raise
        metrics.MOCK_AI_STARTS.labels("new" if taken.new else "held").inc()
        log.info("job taken", extra={"generation_id": generation_id, "new": taken.new, "running": taken.running})
        return ai_pb2.StartGenerationResponse(
            accepted_new=taken.new, running=taken.running, taken_at_heartbeat=taken.taken_at
        )
