"""Coalescing: items asked for one at a time go out together, in batches.

A caller with one item awaits `Coalescer(item)`. The items waiting when a
batch can start go together, in arrival order, as many as fit in
`max_batch_size` (sizes from `size`; one item always fits). A batch can
start when fewer than `max_in_flight` are out: at once (`start_at_once`),
or at the next turn of the event loop, so that the items of tasks that take
a step together share it. Items that arrive while the batches are out wait
and share the next one.

Each caller gets the outcome at its item's place in what the batch returned
(an exception there is raised to that caller alone), or the error the batch
raised. A caller that stops waiting leaves the batch and the others alone.
The policies on top: leo_mesh.db.group_commit (transactions) and
leo_mesh.batched_calls (batch RPCs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeAlias, TypeVar, Union

In = TypeVar("In")
Out = TypeVar("Out")

# What a batch returns for each item: its result, or the exception that is
# that item's answer (raised to its caller).
Outcome: TypeAlias = Union[Out, Exception]  # noqa: UP007 (a generic alias needs Union)


class OutcomesMissing(Exception):
    """A batch answered with another number of outcomes than items."""


class Coalescer(Generic[In, Out]):
    def __init__(
        self,
        run: Callable[[list[In]], Awaitable[Sequence[Outcome[Out]]]],
        *,
        name: str,
        max_in_flight: int,
        max_batch_size: int,
        size: Callable[[In], int] = lambda item: 1,
        start_at_once: bool = False,
    ) -> None:
        """`run`: runs one batch, returns the outcomes in the order of its items."""
        self._run = run
        self._name = name
        self._max_in_flight = max_in_flight
        self._max_batch_size = max_batch_size
        self._size = size
        self._start_at_once = start_at_once
        self._waiting: list[tuple[In, asyncio.Future[Out]]] = []
        self._batches: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def __call__(self, item: In) -> Out:
        """This item's outcome; raises what its batch raised."""
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        if self._waiting and not self._scheduled and len(self._batches) < self._max_in_flight:
            if self._start_at_once:
                self._start_waiting()
            else:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._start_waiting)

    def _start_waiting(self) -> None:
        self._scheduled = False
        while self._waiting and len(self._batches) < self._max_in_flight:
            taken = self._fitting()
            batch, self._waiting = self._waiting[:taken], self._waiting[taken:]
            task = asyncio.create_task(self._run_batch(batch), name=f"{self._name} batch")
            self._batches.add(task)
            task.add_done_callback(self._batch_done)

    def _fitting(self) -> int:
        """How many of the waiting items, from the first, fit in one batch (at least one)."""
        total = 0
        for count, (item, _) in enumerate(self._waiting):
            total += self._size(item)
            if count and total > self._max_batch_size:
                return count
        return len(self._waiting)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        self._schedule()

    async def _run_batch(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            outcomes = await self._run([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise OutcomesMissing(f"{len(outcomes)} outcomes for {len(batch)} items")
        except BaseException as error:  # each caller's own failure; none is lost
            for _, future in batch:
                _settle(future, error)
            if not isinstance(error, Exception):
                raise
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)


def _settle(future: asyncio.Future, outcome: object) -> None:
    """Answer a caller (unless it stopped waiting): an exception is raised to it."""
    if future.done():
        return
    if isinstance(outcome, asyncio.CancelledError):
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
