"""Batch RPCs: requests made together go out in one call, and a server
answers each of a call's items on its own.

A caller that has one request to make awaits `RpcBatcher(request)`: the
requests waiting together go out as one call of the batch RPC
(leo_mesh.coalesce), at most `max_bytes` of requests per call, and each
caller gets the outcome at its request's place, or the error of the call
that carried it. So a dispatch round's jobs, whose tasks take their first
step together, share a call, and results that become ready while calls are
out share the next one. Used for StartGenerations (api_server → AI) and
CompleteGenerations (AI → callback_server).

On the serving side, `serve_each` answers each item as the call for that
item alone would be answered: in its own task and span, with its own status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.trace import SpanKind

from leo_mesh.coalesce import Coalescer
from leo_mesh.errors import DomainError
from leo_mesh.status import INTERNAL, INTERNAL_MESSAGE, code_and_reason, internal_status_proto, status_proto
from leo_mesh.telemetry import tracing

log = logging.getLogger("leo.batched_calls")

Request = TypeVar("Request", bound=Message)
Answer = TypeVar("Answer", bound=Message)
Value = TypeVar("Value")

OK = status_pb2.Status(code=0)

# Well under gRPC's default 4 MiB and our servers' 1 MiB limit for a request.
MAX_BYTES = 512 * 1024


class RpcBatcher(Generic[Request, Answer]):
    def __init__(
        self,
        call: Callable[[list[Request]], Awaitable[Sequence[Answer]]],
        *,
        max_bytes: int = MAX_BYTES,
        max_in_flight: int = 2,
    ) -> None:
        """`call`: sends one batch, returns the outcomes in the order of its requests."""
        self._calls: Coalescer[Request, Answer] = Coalescer(
            call, name="batch call", max_in_flight=max_in_flight, max_batch_size=max_bytes, size=_byte_size
        )

    async def __call__(self, request: Request) -> Answer:
        """This request's outcome; raises what the call that carried it raised
        (leo_mesh.coalesce.OutcomesMissing if its answer lacked outcomes)."""
        return await self._calls(request)


def _byte_size(request: Message) -> int:
    return request.ByteSize()


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
