"""Group commit: writes that arrive while transactions are in flight go
together into the next one (leo_mesh.coalesce), one transaction for all.
A write that finds a free slot starts its transaction at once.

Each caller is answered only once its batch has committed, with its own
result: a domain error decided for one item (a refusal, a conflict) is that
caller's alone. If the batch as a whole fails for another reason, its items
run again one by one, so one bad item fails only its own caller; an outage
of the database (DatabaseUnavailable, ServerBusy) reaches every caller of
the batch at once, since retrying them one by one could not succeed either.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic

from leo_mesh.coalesce import Coalescer, In, Out, Outcome
from leo_mesh.errors import DatabaseUnavailable, ServerBusy
from leo_mesh.telemetry import tracing

log = logging.getLogger("leo.group_commit")

OUTAGE = (DatabaseUnavailable, ServerBusy)


class TransactionBatcher(Generic[In, Out]):
    def __init__(
        self,
        run: Callable[[Sequence[In]], Awaitable[Sequence[Outcome[Out]]]],
        *,
        name: str,
        max_batch: int = 500,
        max_in_flight: int = 2,
    ) -> None:
        """`run`: one transaction for a batch, returning each item's outcome in order."""
        self._run = run
        self._name = name
        self._batches: Coalescer[In, Out] = Coalescer(
            self._commit, name=name, max_in_flight=max_in_flight, max_batch_size=max_batch, start_at_once=True
        )

    async def __call__(self, item: In) -> Out:
        """The item's outcome, once its batch committed; traced as the
        caller's span "<name> transaction" (its wait for a batch included)."""
        with tracing.span(f"{self._name} transaction"):
            return await self._batches(item)

    async def _commit(self, items: list[In]) -> Sequence[Outcome[Out]]:
        try:
            return await self._run(items)
        except OUTAGE:
            raise
        except Exception:
            if len(items) == 1:
                raise
            log.exception("batch failed; its items run one by one", extra={"batch": self._name, "items": len(items)})
            return [await self._commit_alone(item) for item in items]

    async def _commit_alone(self, item: In) -> Outcome[Out]:
        try:
            (outcome,) = await self._run([item])
        except Exception as error:
            return error
        return outcome
