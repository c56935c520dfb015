"""AIService: a stand-in for the slow AI backend."""

from __future__ import annotations

import logging
import random
from collections import Counter

from leo.ai.v1 import ai_pb2, ai_pb2_grpc
from leo_mesh.errors import BackendOverloaded
from leo_mesh.telemetry import tracing
from mock_ai_server.jobs import Jobs
from mock_ai_server.settings import Settings

log = logging.getLogger("mock_ai_server.service")


class AIService(ai_pb2_grpc.AIServiceServicer):
    def __init__(self, jobs: Jobs, settings: Settings, rng: random.Random | None = None) -> None:
        self._jobs = jobs
        self._settings = settings
        self._rng = rng or random.Random()
        self._calls: Counter[str] = Counter()  # StartGeneration calls per generation

    async def StartGeneration(self, request, context):
        generation_id = request.generation_id
        tracing.about_generation(generation_id)
        self._calls[generation_id] += 1
        calls = self._calls[generation_id]
        settings = self._settings
        injected = calls <= settings.mock_ai_start_failures_per_generation or (
            self._rng.random() < settings.mock_ai_start_failure_rate
        )
        log.info("start_generation", extra={"generation_id": generation_id, "call": calls, "refused": injected})
        if injected:
            raise BackendOverloaded()
        return ai_pb2.StartGenerationResponse(accepted_new=self._jobs.start(request))
