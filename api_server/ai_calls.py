"""StartGeneration requests made together go to the AI in one call.

The dispatcher sends each claimed generation in a task of its own (its span,
its log lines, its outcome), and each task asks `StartBatcher.start`. The
requests made in the same turn of the event loop, which is all of a dispatch
round's since its tasks take their first step together, go out as one
`StartGenerations` call (one per chunk of `max_bytes`); each caller gets its
own job's outcome, or the error of the call that carried it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

from leo.ai.v1 import ai_pb2

Call = Callable[[ai_pb2.StartGenerationsRequest], Awaitable[ai_pb2.StartGenerationsResponse]]
Waiting = tuple[ai_pb2.StartGenerationRequest, "asyncio.Future[ai_pb2.StartGenerationOutcome]"]

# Well under the AI's 1 MiB limit for a request: a hundred of the longest prompts.
MAX_BYTES = 512 * 1024


class OutcomesMissing(Exception):
    """The AI answered a StartGenerations call with another number of outcomes than jobs."""


class StartBatcher:
    def __init__(self, call: Call, *, max_bytes: int = MAX_BYTES) -> None:
        self._call = call
        self._max_bytes = max_bytes
        self._waiting: list[Waiting] = []
        self._calls: set[asyncio.Task[None]] = set()

    async def start(self, request: ai_pb2.StartGenerationRequest) -> ai_pb2.StartGenerationOutcome:
        """This job's outcome; raises what the call that carried it raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ai_pb2.StartGenerationOutcome] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._send_waiting)
        self._waiting.append((request, future))
        return await future

    def _send_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        for chunk in _chunks(waiting, self._max_bytes):
            task = asyncio.create_task(self._send(chunk), name="StartGenerations")
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _send(self, chunk: list[Waiting]) -> None:
        try:
            answer = await self._call(ai_pb2.StartGenerationsRequest(generations=[request for request, _ in chunk]))
            if len(answer.outcomes) != len(chunk):
                raise OutcomesMissing(f"{len(answer.outcomes)} outcomes for {len(chunk)} jobs")
        except BaseException as error:  # each caller's own failure; none is lost
            for _, future in chunk:
                if future.done():
                    continue
                if isinstance(error, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        for (_, future), outcome in zip(chunk, answer.outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)


def _chunks(waiting: list[Waiting], max_bytes: int) -> Iterator[list[Waiting]]:
    """Consecutive runs of at most max_bytes of requests (at least one each)."""
    chunk: list[Waiting] = []
    size = 0
    for item in waiting:
        item_size = item[0].ByteSize()
        if chunk and size + item_size > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk
