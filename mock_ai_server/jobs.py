"""Jobs of one mock AI worker: it runs at most `slots` at once and holds at
most `prefetch` more, each waiting for the next slot that frees; it has no
queue of its own (the mesh's queue is in PostgreSQL) and refuses a job it
has no room for (WorkerFull), or any job while it drains (WorkerDraining).

A running job takes a random delay (asyncio timers, not a thread each);
meanwhile its files are rendered on a small thread pool, and stored once
the delay is over. It reports its percent done in steps of a tenth through
the ProgressReporter, then delivers its result to CallbackService,
retrying with backoff until acknowledged; results ready together go in one
CompleteGenerations call, each acknowledged or refused on its own. The next
held job starts as soon as a running one has its files, not when its
callback is delivered. A cancelled job stops where it is: the files it
stored are removed, nothing is reported, and its slot runs the next held
job at once. A restart loses the jobs held here; the mesh puts them back
in its queue when this worker's heartbeats stop (mock_ai_server.heartbeat).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
from google.rpc import status_pb2
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
from leo_mesh.batched_calls import RpcBatcher
from leo_mesh.errors import JobNotHeld, WorkerDraining, WorkerFull
from leo_mesh.media.store import MediaStore, generation_prefix
from leo_mesh.rules import RETRYABLE_CODES, Progress
from leo_mesh.status import code_name
from leo_mesh.telemetry import tracing
from mock_ai_server import render
from mock_ai_server.progress import ProgressReporter
from mock_ai_server.settings import Settings

log = logging.getLogger("mock_ai_server.jobs")

# Percent steps a running job reports.
STEPS = 10
FAILURE_REASON = "the model could not render this prompt (simulated failure)"


class CallbackDropped(Exception):
    """A callback attempt lost on purpose (failure injection)."""


class Refused(Exception):
    """The callback service answered this result (in a batch) with an error status."""

    def __init__(self, status: status_pb2.Status) -> None:
        self.code_name, self.details = code_name(status.code), status.message
        super().__init__(f"{self.code_name}: {self.details}")


class NewerToken(Exception):
    """The callback was refused for its token, and meanwhile a newer dispatch
    of the same generation handed this job a newer one: send it again."""


def _code(exc: grpc.aio.AioRpcError | Refused) -> tuple[str, str]:
    """The status code's name and details of a failed call or a refused result."""
    if isinstance(exc, Refused):
        return exc.code_name, exc.details
    return exc.code().name, exc.details() or ""


def _worth_retrying(exc: BaseException) -> bool:
    if isinstance(exc, CallbackDropped | NewerToken):
        return True
    return isinstance(exc, grpc.aio.AioRpcError | Refused) and _code(exc)[0] in RETRYABLE_CODES


@dataclass
class Job:
    request: ai_pb2.StartGenerationRequest
    # The number of the worker's latest heartbeat when it took the job.
    taken_at: int = 0
    task: asyncio.Task | None = None
    # When it began to run in a slot (the event loop's clock); None while held.
    started: float | None = None
    # It waited here for a slot (the mesh was told it is held, not running).
    waited: bool = False
    # Set when a newer dispatch of the generation hands over its token.
    new_token: asyncio.Event = field(default_factory=asyncio.Event)
    # The latest StartGeneration's span, which the callback continues.
    trace_parent: str | None = None
    # What it wrote to the media store so far (removed if it is cancelled).
    stored: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.started is not None


@dataclass(frozen=True)
class Taken:
    """How the worker took a job (AIService.StartGeneration's answer)."""

    new: bool
    running: bool
    taken_at: int


class Jobs:
    def __init__(
        self,
        settings: Settings,
        callbacks: callback_pb2_grpc.CallbackServiceAsyncStub,
        store: MediaStore,
        rng: random.Random | None = None,
        heartbeat: Callable[[], int] = lambda: 0,
    ) -> None:
        """`heartbeat`: the number of the worker's latest heartbeat."""
        self._settings = settings
        self._callbacks = callbacks
        self._store = store
        self._rng = rng or random.Random()
        self._heartbeat = heartbeat
        # Every job it holds, running, waiting for a slot, or delivering its result.
        self._jobs: dict[str, Job] = {}
        self._waiting: collections.deque[Job] = collections.deque()
        self._running = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._renderers = ThreadPoolExecutor(settings.mock_ai_render_threads, thread_name_prefix="render")
        self.reporter = ProgressReporter(
            callbacks,
            interval_s=settings.mock_ai_progress_interval_s,
            timeout_s=settings.mock_ai_callback_timeout_s,
            enabled=settings.mock_ai_progress_reports,
        )
        # Jobs finish in bursts; the callback service gets a bounded number
        # of results at once, the rest wait here (not on its connection pool).
        self._sending = asyncio.Semaphore(settings.mock_ai_max_concurrent_callbacks)
        # Results ready together go in one CompleteGenerations call.
        self._results: RpcBatcher[callback_pb2.CompleteGenerationRequest, callback_pb2.CompleteGenerationOutcome] = (
            RpcBatcher(self._complete_all)
        )

    def __len__(self) -> int:
        return len(self._jobs)

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def held(self) -> list[Job]:
        """Every job it holds (what its heartbeats report)."""
        return list(self._jobs.values())

    def start(self, request: ai_pb2.StartGenerationRequest) -> Taken:
        """Take a job for this generation into a free slot, or hold it for the
        next one; a generation it holds already keeps its job, which takes
        the newer dispatch's callback token. WorkerDraining, WorkerFull."""
        held = self._jobs.get(request.generation_id)
        if held is not None:
            held.request = request
            held.trace_parent = tracing.traceparent()
            held.new_token.set()
            return Taken(new=False, running=held.running, taken_at=held.taken_at)
        if self.draining:
            raise WorkerDraining()
        settings = self._settings
        if self._running >= settings.mock_ai_slots and len(self._waiting) >= settings.mock_ai_prefetch:
            raise WorkerFull()
        job = Job(request, taken_at=self._heartbeat(), trace_parent=tracing.traceparent())
        self._jobs[request.generation_id] = job
        self._idle.clear()
        self._counted()
        if self._running < settings.mock_ai_slots:
            self._run(job)
        else:
            job.waited = True
            self._waiting.append(job)
        return Taken(new=True, running=job.running, taken_at=job.taken_at)

    def cancel(self, generation_id: str) -> asyncio.Task | None:
        """Stop the job of this generation, wherever it is: nothing of it is
        kept or reported. Returns its task while running (its slot takes the
        next held job when the task ends); JobNotHeld when there is none."""
        job = self._jobs.pop(generation_id, None)
        if job is None:
            raise JobNotHeld(generation_id)
        log.info("job stopped", extra={"generation_id": generation_id, "running": job.running})
        if job.task is not None:
            job.task.cancel()
        else:
            self._waiting.remove(job)
        self._forget(job)
        return job.task

    async def stop(self, generation_id: str) -> None:
        """Cancel, and return once the job has let go of its slot and its files."""
        task = self.cancel(generation_id)
        if task is not None:
            await asyncio.wait({task})

    def drain(self) -> list[str]:
        """Take no new job, and give back the held ones that wait for a slot
        (the mesh queues them again); returns their generations."""
        self.draining = True
        given_back = [job.request.generation_id for job in self._waiting]
        for generation_id in given_back:
            self.cancel(generation_id)
        return given_back

    async def finished(self) -> None:
        """Until it holds no job (every result delivered or given up)."""
        await self._idle.wait()

    def _counted(self) -> None:
        metrics.MOCK_AI_JOBS_IN_FLIGHT.set(len(self._jobs))

    def _forget(self, job: Job) -> None:
        self.reporter.forget(job.request.generation_id)
        self._counted()
        if not self._jobs:
            self._idle.set()

    def _run(self, job: Job) -> None:
        self._running += 1
        job.started = asyncio.get_running_loop().time()
        job.task = asyncio.create_task(self._work(job), name=f"job {job.request.generation_id}")

    def _next(self) -> None:
        """A running job has its files (or was stopped): its slot takes the next held job."""
        self._running -= 1
        if self._waiting and self._running < self._settings.mock_ai_slots:
            self._run(self._waiting.popleft())

    async def _work(self, job: Job) -> None:
        try:
            try:
                message = await self._produce(job)
            except asyncio.CancelledError:
                await self._discard(job)
                raise
            finally:
                self._next()
            if message.WhichOneof("result") == "stored":
                # The last report before the result, acknowledged first, so a watcher sees 100% before COMPLETE.
                await self.reporter.report_and_wait(job, Progress(percent=100))
            await self._deliver(job, message)
        finally:
            if self._jobs.get(job.request.generation_id) is job:
                del self._jobs[job.request.generation_id]
                self._forget(job)

    async def _discard(self, job: Job) -> None:
        """A stopped job keeps nothing in the media store."""
        for key in job.stored:
            try:
                await asyncio.shield(self._store.delete(key))
            except Exception:
                log.warning("a stopped job's file was not removed", extra={"key": key})

    async def _produce(self, job: Job) -> callback_pb2.CompleteGenerationRequest:
        """Run the job: its delay with progress reports, its files rendered
        and stored meanwhile; the result to deliver."""
        request, settings = job.request, self._settings
        loop = asyncio.get_running_loop()
        delay = self._rng.uniform(settings.mock_ai_min_delay_s, settings.mock_ai_max_delay_s)
        fails = self._rng.random() < settings.mock_ai_generation_failure_rate
        started = loop.time()
        # The mesh knows that a job taken into a free slot runs (the start's
        # answer said so); of one that waited here, only this report tells it.
        self.reporter.report(job, Progress(percent=0), at_once=job.waited)
        files = None if fails else asyncio.ensure_future(self._files(job))
        try:
            for step in range(1, STEPS):
                await asyncio.sleep(max(0.0, started + delay * step / STEPS - loop.time()))
                self.reporter.report(job, Progress(percent=100 * step // STEPS))
            await asyncio.sleep(max(0.0, started + delay - loop.time()))
            message = callback_pb2.CompleteGenerationRequest(generation_id=request.generation_id)
            if files is None:
                message.failure_reason = FAILURE_REASON
                return message
            try:
                message.stored.assets.extend(await files)
            except Exception as exc:  # the store or the renderer failed: the generation fails
                log.exception("files not made", extra={"generation_id": request.generation_id})
                message.failure_reason = f"the backend could not store the files ({type(exc).__name__})"
                return message
        finally:
            if files is not None and not files.done():
                files.cancel()
        return message

    def _renderings(self, request: ai_pb2.StartGenerationRequest) -> list:
        settings = self._settings
        gid, prompt, width, height = request.generation_id, request.prompt, request.width, request.height
        if request.kind == ai_pb2.KIND_VIDEO:
            frames, fps = settings.mock_ai_video_frames, settings.mock_ai_video_fps
            return [lambda: render.render_animation(gid, prompt, width, height, frames, fps)]
        return [
            (lambda index=index: render.render_image(gid, index, prompt, width, height))
            for index in range(settings.mock_ai_images_per_generation)
        ]

    async def _files(self, job: Job) -> list[callback_pb2.Asset]:
        """Render the job's files on the render threads, store them; their keys and facts."""
        request = job.request
        loop = asyncio.get_running_loop()
        made = await asyncio.gather(
            *(loop.run_in_executor(self._renderers, work) for work in self._renderings(request))
        )
        assets = []
        for index, file in enumerate(made):
            key = f"{generation_prefix(request.generation_id)}{index}.{file.extension}"
            job.stored.append(key)
            await self._store.put(key, file.data, file.content_type)
            assets.append(
                callback_pb2.Asset(
                    key=key,
                    content_type=file.content_type,
                    width=file.width,
                    height=file.height,
                    byte_size=len(file.data),
                    duration_ms=file.duration_ms,
                    frame_count=file.frame_count,
                )
            )
        return assets

    async def _deliver(self, job: Job, message: callback_pb2.CompleteGenerationRequest) -> None:
        """Deliver the result, in a span continuing the job's start, which the
        callback server's span of the result continues in turn."""
        generation_id = job.request.generation_id
        with tracing.span("deliver result", parent=job.trace_parent, kind=SpanKind.CLIENT, generation_id=generation_id):
            tracing.about_generation(generation_id)
            message.traceparent = tracing.traceparent() or ""
            await self._deliver_in_span(job, message)

    async def _deliver_in_span(self, job: Job, message: callback_pb2.CompleteGenerationRequest) -> None:
        settings = self._settings
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
        except (grpc.aio.AioRpcError, Refused) as exc:
            code, details = _code(exc)
            log.warning("callback refused", extra={"generation_id": generation_id, "code": code, "error": details})
        except CallbackDropped:
            log.warning("callback given up", extra={"generation_id": generation_id})

    async def _send(self, message: callback_pb2.CompleteGenerationRequest, token: str, job: Job) -> None:
        try:
            metrics.MOCK_AI_JOBS_QUEUED.inc()
            try:
                await self._sending.acquire()  # a turn among the results in flight
            finally:
                metrics.MOCK_AI_JOBS_QUEUED.dec()
            try:
                outcome = await self._results(message)
            finally:
                self._sending.release()
            if outcome.status.code != grpc.StatusCode.OK.value[0]:
                raise Refused(outcome.status)
        except (grpc.aio.AioRpcError, Refused) as exc:
            if _code(exc)[0] == grpc.StatusCode.UNAUTHENTICATED.name and await self._newer_token(job, token):
                raise NewerToken() from exc
            raise

    async def _complete_all(
        self, results: list[callback_pb2.CompleteGenerationRequest]
    ) -> Sequence[callback_pb2.CompleteGenerationOutcome]:
        request = callback_pb2.CompleteGenerationsRequest(results=results)
        timeout = self._settings.mock_ai_callback_timeout_s
        return (await self._callbacks.CompleteGenerations(request, timeout=timeout, wait_for_ready=True)).outcomes

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
        """Drop every held job (the mesh queues them again when this worker's
        heartbeats stop)."""
        self._waiting.clear()
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._jobs.clear()
        metrics.MOCK_AI_JOBS_IN_FLIGHT.set(0)
        self._renderers.shutdown(wait=False, cancel_futures=True)
