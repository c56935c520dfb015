"""In-flight jobs of the mock AI: asyncio timers, not a thread each.

A job waits a random delay on the event loop, makes its result and delivers
it to CallbackService, retrying with backoff until acknowledged. A restart
loses the jobs held here; the api_server's completion deadline recovers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field

import grpc
from opentelemetry.trace import SpanKind
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from leo.ai.v1 import ai_pb2
from leo.callback.v1 import callback_pb2, callback_pb2_grpc
from leo_mesh import metrics
from leo_mesh.rules import RETRYABLE_CODES
from leo_mesh.telemetry import tracing
from mock_ai_server.settings import Settings

log = logging.getLogger("mock_ai_server.jobs")


class CallbackDropped(Exception):
    """A callback attempt lost on purpose (failure injection)."""


class NewerToken(Exception):
    """The callback was refused for its token, and meanwhile a newer dispatch
    of the same generation handed this job a newer one: send it again."""


def _worth_retrying(exc: BaseException) -> bool:
    if isinstance(exc, CallbackDropped | NewerToken):
        return True
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code().name in RETRYABLE_CODES


@dataclass
class Job:
    request: ai_pb2.StartGenerationRequest
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task | None = None
    # Set when a newer dispatch of the generation hands over its token.
    new_token: asyncio.Event = field(default_factory=asyncio.Event)
    # The latest StartGeneration's span, which the callback continues.
    trace_parent: str | None = None


class Jobs:
    def __init__(
        self,
        settings: Settings,
        callbacks: callback_pb2_grpc.CallbackServiceAsyncStub,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._callbacks = callbacks
        self._rng = rng or random.Random()
        self._jobs: dict[str, Job] = {}
        # Jobs finish in bursts; the callback service gets a bounded number
        # of calls at once, the rest wait here (not on its connection pool).
        self._sending = asyncio.Semaphore(settings.mock_ai_max_concurrent_callbacks)

    def __len__(self) -> int:
        return len(self._jobs)

    def start(self, request: ai_pb2.StartGenerationRequest) -> bool:
        """Hold a job for this generation; False if one is already held (it
        then reports with the newer dispatch's callback token)."""
        held = self._jobs.get(request.generation_id)
        if held is not None:
            held.request = request
            held.trace_parent = tracing.traceparent()
            held.new_token.set()
            return False
        job = Job(request, trace_parent=tracing.traceparent())
        settings = self._settings
        delay = self._rng.uniform(settings.mock_ai_min_delay_s, settings.mock_ai_max_delay_s)
        job.timer = asyncio.get_running_loop().call_later(delay, self._finish, job)
        self._jobs[request.generation_id] = job
        metrics.MOCK_AI_JOBS_IN_FLIGHT.set(len(self._jobs))
        return True

    def _finish(self, job: Job) -> None:
        job.timer = None
        job.task = asyncio.create_task(self._deliver(job), name=f"callback {job.request.generation_id}")

    def _result(self, request: ai_pb2.StartGenerationRequest) -> callback_pb2.CompleteGenerationRequest:
        settings = self._settings
        message = callback_pb2.CompleteGenerationRequest(
            generation_id=request.generation_id, callback_token=request.callback_token
        )
        if self._rng.random() < settings.mock_ai_generation_failure_rate:
            message.failure_reason = "the model could not render this prompt (simulated failure)"
            return message
        base = settings.mock_ai_image_base_url.rstrip("/")
        for index in range(settings.mock_ai_images_per_generation):
            message.completed.images.add(
                url=f"{base}/{request.generation_id}/{index}.png", width=request.width, height=request.height
            )
        return message

    async def _deliver(self, job: Job) -> None:
        """Deliver the result, in a span continuing the StartGeneration's trace."""
        generation_id = job.request.generation_id
        with tracing.span("deliver result", parent=job.trace_parent, kind=SpanKind.CLIENT, generation_id=generation_id):
            tracing.about_generation(generation_id)
            await self._deliver_in_span(job)

    async def _deliver_in_span(self, job: Job) -> None:
        settings = self._settings
        message = self._result(job.request)
        generation_id = job.request.generation_id
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_worth_retrying),
                wait=wait_random_exponential(
                    multiplier=settings.mock_ai_callback_backoff_base_s, max=settings.mock_ai_callback_backoff_cap_s
                ),
                stop=stop_after_delay(settings.mock_ai_callback_give_up_s),
                reraise=True,
            ):
                with attempt:
                    number = attempt.retry_state.attempt_number
                    token = message.callback_token = job.request.callback_token  # the latest dispatch's
                    if self._rng.random() < settings.mock_ai_callback_drop_rate:
                        log.info("callback dropped", extra={"generation_id": generation_id, "attempt": number})
                        raise CallbackDropped()
                    await self._send(message, token, job)
            log.info("callback delivered", extra={"generation_id": generation_id, "attempts": number})
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "callback refused",
                extra={"generation_id": generation_id, "code": exc.code().name, "error": exc.details()},
            )
        except CallbackDropped:
            log.warning("callback given up", extra={"generation_id": generation_id})
        finally:
            self._jobs.pop(generation_id, None)
            metrics.MOCK_AI_JOBS_IN_FLIGHT.set(len(self._jobs))

    async def _send(self, message: callback_pb2.CompleteGenerationRequest, token: str, job: Job) -> None:
        try:
            metrics.MOCK_AI_JOBS_QUEUED.inc()
            try:
                await self._sending.acquire()  # a turn among the callbacks in flight
            finally:
                metrics.MOCK_AI_JOBS_QUEUED.dec()
            try:
                await self._callbacks.CompleteGeneration(
                    message,
                    timeout=self._settings.mock_ai_callback_timeout_s,
                    wait_for_ready=True,
                    metadata=tracing.outgoing_metadata() or None,
                )
            finally:
                self._sending.release()
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.UNAUTHENTICATED and await self._newer_token(job, token):
                raise NewerToken() from exc
            raise

    async def _newer_token(self, job: Job, refused: str) -> bool:
        """Whether the job holds (or receives within the grace period) a newer
        dispatch's token than the refused one. A token is refused because a
        newer dispatch exists; its StartGeneration may still be on its way."""
        if job.request.callback_token == refused:
            job.new_token.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.new_token.wait(), timeout=self._settings.mock_ai_stale_token_grace_s)
        return job.request.callback_token != refused

    async def close(self) -> None:
        """Drop every held job (the api_server's deadline recovers them)."""
        for job in self._jobs.values():
            if job.timer is not None:
                job.timer.cancel()
            if job.task is not None:
                job.task.cancel()
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        self._jobs.clear()
        metrics.MOCK_AI_JOBS_IN_FLIGHT.set(0)
