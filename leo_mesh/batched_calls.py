"""Batch RPCs: requests made together go out in one call, and a server
answers each of a call's items on its own, in one shape.

Every batch RPC of the internal contracts answers its items in order, each
with an outcome message: a `google.rpc.Status` (`status`: OK, or what the
call for that item alone would have failed with) and, when OK, that item's
payload in the message's other fields.

A caller that has one request to make awaits `RpcBatcher(request)`: the
requests waiting together go out as one call of the batch RPC
(leo_mesh.coalesce), at most `max_bytes` of requests per call, and each
caller gets the outcome at its request's place, or the error of the call
that carried it. So a dispatch round's jobs, whose tasks take their first
step together, share a call, and results that become ready while calls are
out share the next one. Used for StartGenerations (api_server → AI) and
CompleteGenerations (AI → callback_server).

On the serving side, `answer_each` makes those outcomes: each item handled
as the call for that item alone would be, in its own task, with its own
status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.trace import SpanKind

from leo_mesh.coalesce import Coalescer
from leo_mesh.errors import DomainError
from leo_mesh.status import INTERNAL, INTERNAL_MESSAGE, code_and_reason, internal_status_proto, status_proto
from leo_mesh.telemetry import tracing

log = logging.getLogger("leo.batched_calls")

Request = TypeVar("Request", bound=Message)
Item = TypeVar("Item")
Answer = TypeVar("Answer", bound=Message)

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


async def answer_each(
    items: Sequence[Item],
    handle: Callable[[Item], Awaitable[Mapping[str, Any] | None]],
    *,
    outcome: Callable[..., Answer],
    span_name: str | None = None,
    traceparent: Callable[[Item], str] = lambda item: "",
) -> list[Answer]:
    """Each item's outcome, in the items' order: `outcome(status=OK, **payload)`
    with the payload fields `handle` returned (None: none), or
    `outcome(status=...)` with its domain error's status; anything else is
    logged and INTERNAL, as for a call of one. Each item is handled in a task
    of its own (its own log context); with `span_name`, in a SERVER span of
    that name continuing the item's own trace (`traceparent`)."""

    async def one(item: Item) -> Answer:
        traced = (
            tracing.span(span_name, parent=traceparent(item) or None, kind=SpanKind.SERVER)
            if span_name
            else contextlib.nullcontext()
        )
        with traced as span:
            try:
                payload = await handle(item)
            except DomainError as exc:
                tracing.set_code(span, code_and_reason(exc)[0].name, exc.message)
                return outcome(status=status_proto(exc))
            except Exception:
                log.exception("batch item failed", extra={"item": span_name or type(item).__name__})
                tracing.set_code(span, INTERNAL[0].name, INTERNAL_MESSAGE)
                return outcome(status=internal_status_proto())
            tracing.set_code(span, "OK")
            return outcome(status=OK, **(payload or {}))

    return list(await asyncio.gather(*(one(item) for item in items)))
