"""Batch calls: requests made together go out in one call, and a server
answers each of a call's items on its own.

A caller that has one request to make awaits `CallBatcher(request)`. The
requests waiting when a call can go out (at the next turn of the event
loop, unless `max_in_flight` calls are already out: then when one of them
is answered) go together as one call of the batch RPC, one per chunk of at
most `max_bytes`. Each caller gets the outcome the answer holds at its
request's place, or the error of the call that carried it. So a dispatch
round's jobs, whose tasks take their first step together, share a call,
and results that become ready while calls are out share the next one.
Used for StartGenerations (api_server → AI) and CompleteGenerations
(AI → callback_server).

On the serving side, `serve_each` answers each item as the call for that
item alone would be answered: in its own task and span, with its own status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Generic, TypeVar

from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.trace import SpanKind

from leo_mesh.errors import DomainError
from leo_mesh.status import INTERNAL, INTERNAL_MESSAGE, code_and_reason, internal_status_proto, status_proto
from leo_mesh.telemetry import tracing

log = logging.getLogger("leo.batched_calls")

Request = TypeVar("Request", bound=Message)
Outcome = TypeVar("Outcome")
Value = TypeVar("Value")

OK = status_pb2.Status(code=0)

# Well under gRPC's default 4 MiB and our servers' 1 MiB limit for a request.
MAX_BYTES = 512 * 1024


class OutcomesMissing(Exception):
    """A batch call answered with another number of outcomes than requests."""


class CallBatcher(Generic[Request, Outcome]):
    def __init__(
        self,
        call: Callable[[list[Request]], Awaitable[Sequence[Outcome]]],
        *,
        max_bytes: int = MAX_BYTES,
        max_in_flight: int = 2,
    ) -> None:
        """`call`: sends one batch, returns the outcomes in the order of its requests."""
        self._call = call
        self._max_bytes = max_bytes
        self._max_in_flight = max_in_flight
        self._waiting: list[tuple[Request, asyncio.Future[Outcome]]] = []
        self._calls: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def __call__(self, request: Request) -> Outcome:
        """This request's outcome; raises what the call that carried it raised."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        if self._waiting and not self._scheduled and len(self._calls) < self._max_in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._send_waiting)

    def _send_waiting(self) -> None:
        self._scheduled = False
        waiting, self._waiting = self._waiting, []
        for chunk in _chunks(waiting, self._max_bytes):
            task = asyncio.create_task(self._send(chunk), name="batch call")
            self._calls.add(task)
            task.add_done_callback(self._call_done)

    def _call_done(self, task: asyncio.Task[None]) -> None:
        self._calls.discard(task)
        self._schedule()

    async def _send(self, chunk: list[tuple[Request, asyncio.Future[Outcome]]]) -> None:
        try:
            outcomes = await self._call([request for request, _ in chunk])
            if len(outcomes) != len(chunk):
                raise OutcomesMissing(f"{len(outcomes)} outcomes for {len(chunk)} requests")
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
        for (_, future), outcome in zip(chunk, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)


def _chunks(waiting: list[tuple[Request, asyncio.Future[Outcome]]], max_bytes: int) -> Iterator[list]:
    """Consecutive runs of at most max_bytes of requests (at least one each)."""
    chunk: list = []
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


async def serve_each(
    items: Sequence[Request],
    handle: Callable[[Request], Awaitable[Value]],
    *,
    span_name: str,
    traceparent: Callable[[Request], str],
) -> list[tuple[status_pb2.Status, Value | None]]:
    """Each item's status and, when OK, what `handle` returned, in the items'
    order. Each is handled in a task of its own (its own log context) and a
    SERVER span continuing the item's own trace; its domain error is its
    status, and anything else is logged and INTERNAL, as for a call of one."""

    async def one(item: Request) -> tuple[status_pb2.Status, Value | None]:
        with tracing.span(span_name, parent=traceparent(item) or None, kind=SpanKind.SERVER) as span:
            try:
                value = await handle(item)
            except DomainError as exc:
                tracing.set_code(span, code_and_reason(exc)[0].name, exc.message)
                return status_proto(exc), None
            except Exception:
                log.exception("batch item failed", extra={"item": span_name})
                tracing.set_code(span, INTERNAL[0].name, INTERNAL_MESSAGE)
                return internal_status_proto(), None
            tracing.set_code(span, "OK")
            return OK, value

    return await asyncio.gather(*(one(item) for item in items))
