"""All SQL about generations. Each method is one transaction.

State machine: PENDING → COMPLETE | FAILED, nothing else. A PENDING row is
its own outbox entry: `nextAttemptAt` says when the dispatcher must next look
at it (a retry, the end of a claim lease, or the completion deadline).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from leo_mesh.db.models import CoreModel, Generation, GenerationStatus


class CompletionOutcome(enum.Enum):
    APPLIED = "applied"  # the generation moved to its final state
    DUPLICATE = "duplicate"  # it already had exactly this result
    CONFLICT = "conflict"  # it already had another final state
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class Result:
    """What the AI reported: images, or a failure reason."""

    images: list[dict] | None = None
    failure_reason: str | None = None

    @property
    def status(self) -> GenerationStatus:
        return GenerationStatus.COMPLETE if self.images is not None else GenerationStatus.FAILED


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


class GenerationStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(self, *, prompt: str, model: CoreModel, width: int, height: int) -> Generation:
        """Insert a PENDING generation, due for dispatch at once."""
        async with self._sessions.begin() as session:
            row = Generation(
                id=uuid.uuid4(),
                generation_id=uuid.uuid4(),
                prompt=prompt,
                core_model=model,
                image_width=width,
                image_height=height,
                status=GenerationStatus.PENDING,
                updated_at=func.now(),
                next_attempt_at=func.now(),
            )
            session.add(row)
            await session.flush()
            await session.refresh(row)
            return row

    async def get(self, generation_id: uuid.UUID) -> Generation | None:
        async with self._sessions() as session:
            return await session.scalar(select(Generation).where(Generation.generation_id == generation_id))

    async def claim_due(
        self, *, limit: int, lease_s: float, max_attempts: int
    ) -> tuple[list[Generation], list[Generation]]:
        """Claim up to `limit` due PENDING rows for one dispatch attempt each.

        The claim counts the attempt and pushes `nextAttemptAt` a lease ahead
        before anything is sent, so other dispatchers skip these rows (and a
        crash mid-send only delays them by the lease). Due rows that already
        had their last attempt timed out: they end FAILED here. Returns
        (claimed, timed_out).
        """
        async with self._sessions.begin() as session:
            due = (
                select(Generation.id)
                .where(Generation.status == GenerationStatus.PENDING, Generation.next_attempt_at <= func.now())
                .order_by(Generation.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
            timed_out = await session.scalars(
                update(Generation)
                .where(Generation.id.in_(due), Generation.attempts >= max_attempts)
                .values(
                    status=GenerationStatus.FAILED,
                    failure_reason=func.concat(
                        "timed out: the AI backend sent no result after ", Generation.attempts, " attempts"
                    ),
                    completed_at=func.now(),
                    updated_at=func.now(),
                    next_attempt_at=None,
                )
                .returning(Generation)
            )
            timed_out = list(timed_out)
            claimed = await session.scalars(
                update(Generation)
                .where(Generation.id.in_(due), Generation.attempts < max_attempts)
                .values(
                    attempts=Generation.attempts + 1,
                    next_attempt_at=func.now() + _seconds(lease_s),
                    updated_at=func.now(),
                )
                .returning(Generation)
            )
            return list(claimed), timed_out

    async def mark_dispatched(self, row_id: uuid.UUID, attempt: int, *, deadline_s: float) -> None:
        """The AI accepted the job: wait for its callback until the deadline."""
        await self._update_pending(
            row_id, attempt, next_attempt_at=func.now() + _seconds(deadline_s), last_error=None
        )

    async def schedule_retry(self, row_id: uuid.UUID, attempt: int, *, error: str, delay_s: float) -> None:
        await self._update_pending(row_id, attempt, next_attempt_at=func.now() + _seconds(delay_s), last_error=error)

    async def fail(self, row_id: uuid.UUID, attempt: int, *, reason: str, error: str | None = None) -> bool:
        """End a PENDING generation FAILED (only if this attempt still owns it)."""
        return await self._update_pending(
            row_id,
            attempt,
            status=GenerationStatus.FAILED,
            failure_reason=reason,
            last_error=error,
            completed_at=func.now(),
            next_attempt_at=None,
        )

    async def _update_pending(self, row_id: uuid.UUID, attempt: int, **values) -> bool:
        """Update a row still PENDING at this attempt; a callback or a newer
        attempt that got there first wins."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(Generation)
                .where(
                    and_(
                        Generation.id == row_id,
                        Generation.status == GenerationStatus.PENDING,
                        Generation.attempts == attempt,
                    )
                )
                .values(updated_at=func.now(), **values)
            )
            return result.rowcount == 1

    async def complete(self, generation_id: uuid.UUID, result: Result) -> CompletionOutcome:
        """Apply the AI's result, idempotently: one final state per generation."""
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(Generation).where(Generation.generation_id == generation_id).with_for_update()
            )
            if row is None:
                return CompletionOutcome.NOT_FOUND
            if row.status is not GenerationStatus.PENDING:
                same = row.status is result.status and (
                    row.images == result.images
                    if result.images is not None
                    else row.failure_reason == result.failure_reason
                )
                return CompletionOutcome.DUPLICATE if same else CompletionOutcome.CONFLICT
            row.status = result.status
            row.images = result.images or []
            row.failure_reason = result.failure_reason
            row.completed_at = func.now()
            row.updated_at = func.now()
            row.next_attempt_at = None
            return CompletionOutcome.APPLIED
