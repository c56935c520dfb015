"""Group commit: calls that arrive while a batch is in flight go together
into the next one, one transaction for all of them.

Each caller is answered only once its batch has committed, with its own
result: a domain error decided for one item (a refusal, a conflict) is that
caller's alone. If the batch as a whole fails for another reason, its items
run again one by one, so one bad item fails only its own caller; an outage
of the database (DatabaseUnavailable, ServerBusy) reaches every caller of
the batch at once, since retrying them one by one could not succeed either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeAlias, TypeVar, Union

from leo_mesh.errors import DatabaseUnavailable, DomainError, ServerBusy
from leo_mesh.telemetry import tracing

log = logging.getLogger("leo.batching")

In = TypeVar("In")
Out = TypeVar("Out")

# What a batch function returns for each item: its result, or the domain
# error that is that item's answer.
Outcome: TypeAlias = Union[Out, DomainError]  # noqa: UP007 (a generic alias needs Union)

OUTAGE = (DatabaseUnavailable, ServerBusy)


class GroupCommit(Generic[In, Out]):
    def __init__(
        self,
        run: Callable[[Sequence[In]], Awaitable[Sequence[Outcome[Out]]]],
        *,
        name: str,
        max_batch: int = 500,
        max_in_flight: int = 2,
    ) -> None:
        self._run = run
        self._name = name
        self._max_batch = max_batch
        self._in_flight = 0
        self._max_in_flight = max_in_flight
        self._waiting: list[tuple[In, asyncio.Future[Out]]] = []

    async def __call__(self, item: In) -> Out:
        """The item's outcome, once its batch committed; traced as the
        caller's span "<name> transaction" (its wait for a batch included)."""
        with tracing.span(f"{self._name} transaction"):
            future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
            self._waiting.append((item, future))
            self._maybe_start()
            return await future

    def _maybe_start(self) -> None:
        while self._waiting and self._in_flight < self._max_in_flight:
            batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._commit(batch), name=f"{self._name} batch")

    async def _commit(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            try:
                outcomes = await self._run([item for item, _ in batch])
            except OUTAGE as outage:
                for _, future in batch:
                    _settle(future, outage)
                return
            except Exception:
                if len(batch) == 1:
                    raise
                log.exception(
                    "batch failed; its items run one by one", extra={"batch": self._name, "items": len(batch)}
                )
                for item, future in batch:
                    await self._commit_alone(item, future)
                return
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                _settle(future, outcome)
        except BaseException as error:  # the items' callers get it; the loop goes on
            for _, future in batch:
                _settle(future, error)
            if not isinstance(error, Exception):
                raise
        finally:
            self._in_flight -= 1
            self._maybe_start()

    async def _commit_alone(self, item: In, future: asyncio.Future[Out]) -> None:
        try:
            (outcome,) = await self._run([item])
        except Exception as error:
            _settle(future, error)
        else:
            _settle(future, outcome)


def _settle(future: asyncio.Future, outcome: object) -> None:
    """Answer a caller (unless it gave up waiting): an exception is raised to it."""
    if future.done():
        return
    if isinstance(outcome, asyncio.CancelledError):
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
