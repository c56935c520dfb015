"""All SQL about generations. Each method is one transaction.

State machine: PENDING → COMPLETE | FAILED | CANCELLED, nothing else. A
PENDING row is its own outbox entry: `nextAttemptAt` says when the dispatcher
must next look at it (a retry, the end of a claim lease, or the completion
deadline). Every read and change made for a client names its owner.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.protobuf import json_format
from sqlalchemy import and_, bindparam, func, insert, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from leo_mesh.convert import to_proto
from leo_mesh.db.models import CoreModel, Generation, GenerationStatus
from leo_mesh.db.webhooks import WebhookStore


class CompletionOutcome(enum.Enum):
    APPLIED = "applied"  # the generation moved to its final state
    DUPLICATE = "duplicate"  # it already had exactly this result
    CONFLICT = "conflict"  # it already had another final state
    IGNORED = "ignored"  # it was cancelled: the result is dropped
    NOT_FOUND = "not_found"
    BAD_TOKEN = "bad_token"  # not the token of the latest dispatch


class CancelOutcome(enum.Enum):
    CANCELLED = "cancelled"
    ALREADY_FINAL = "already_final"
    NOT_FOUND = "not_found"


class IdempotencyConflict(Exception):
    """The request id was used before with other parameters."""


class TooManyPending(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


@dataclass(frozen=True)
class NewGeneration:
    owner: str
    prompt: str
    model: CoreModel
    width: int
    height: int
    request_id: uuid.UUID | None = None
    webhook_url: str | None = None

    def fingerprint(self) -> str:
        """A digest of what the client asked for, to recognise a repeat."""
        fields = "\x1f".join([self.prompt, self.model.value, str(self.width), str(self.height), self.webhook_url or ""])
        return hashlib.sha256(fields.encode()).hexdigest()


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


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


# NOTIFY channel of every change of a generation; the payload is its generationId.
CHANGES_CHANNEL = "generation_changed"


async def _notify_changed(session: AsyncSession, generation_ids: Iterable[uuid.UUID]) -> None:
    """Tell listening api_servers that these generations changed. PostgreSQL
    delivers a NOTIFY only when its transaction commits, so whoever reads the
    row on receipt sees the change."""
    ids = list(generation_ids)
    if ids:
        await session.execute(
            text("SELECT pg_notify(:channel, id::text) FROM unnest(CAST(:ids AS uuid[])) AS id"),
            {"channel": CHANGES_CHANNEL, "ids": ids},
        )


async def _finalised(session: AsyncSession, rows: list[Generation]) -> None:
    """What must commit together with a final state: the webhook delivery."""
    for row in rows:
        if row.webhook_url is not None:
            data = json_format.MessageToDict(to_proto(row), always_print_fields_with_no_presence=True)
            await WebhookStore.enqueue(session, row, data)


async def _make_final(session: AsyncSession, row: Generation, status: GenerationStatus, **result) -> None:
    """Move a locked PENDING row to its final state, with what must commit
    with it (the webhook) and the notification that goes out at commit."""
    row.status = status
    for name, value in result.items():
        setattr(row, name, value)
    row.completed_at = row.updated_at = func.now()
    row.next_attempt_at = None
    await session.flush()
    await session.refresh(row)
    await _finalised(session, [row])
    await _notify_changed(session, [row.generation_id])


class GenerationStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(self, new: NewGeneration, *, max_pending: int) -> tuple[Generation, bool]:
        """Insert a PENDING generation, due for dispatch at once.

        Returns (generation, created). A repeated request id with the same
        parameters returns the original (created False), even under a race:
        creates of one owner are serialised by an advisory lock, and the
        unique index on (owner, requestId) backs it up.
        """
        async with self._sessions.begin() as session:
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:owner, 0))"), {"owner": new.owner}
            )
            if new.request_id is not None:
                existing = await session.scalar(
                    select(Generation).where(Generation.owner == new.owner, Generation.request_id == new.request_id)
                )
                if existing is not None:
                    if existing.request_fingerprint != new.fingerprint():
                        raise IdempotencyConflict()
                    return existing, False
            pending = await session.scalar(
                select(func.count())
                .select_from(Generation)
                .where(Generation.owner == new.owner, Generation.status == GenerationStatus.PENDING)
            )
            if pending >= max_pending:
                raise TooManyPending(max_pending)
            row = await session.scalar(
                insert(Generation)
                .values(
                    id=uuid.uuid4(),
                    generation_id=uuid.uuid4(),
                    owner=new.owner,
                    prompt=new.prompt,
                    core_model=new.model,
                    image_width=new.width,
                    image_height=new.height,
                    request_id=new.request_id,
                    request_fingerprint=new.fingerprint() if new.request_id else None,
                    webhook_url=new.webhook_url,
                    status=GenerationStatus.PENDING,
                    # Taken under the owner's lock, so an owner's generations are
                    # ordered as committed and a page cursor never skips one.
                    created_at=func.clock_timestamp(),
                    updated_at=func.clock_timestamp(),
                    next_attempt_at=func.now(),
                )
                .returning(Generation)
            )
            return row, True

    async def get(self, generation_id: uuid.UUID, owner: str) -> Generation | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(Generation).where(Generation.generation_id == generation_id, Generation.owner == owner)
            )

    async def list(
        self,
        owner: str,
        *,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None = None,
        status: GenerationStatus | None = None,
    ) -> list[Generation]:
        """The owner's generations, newest first, strictly after the keyset
        position `after` = (createdAt, id) of the previous page's last row."""
        query = select(Generation).where(Generation.owner == owner)
        if status is not None:
            query = query.where(Generation.status == status)
        if after is not None:
            query = query.where(tuple_(Generation.created_at, Generation.id) < tuple_(*after))
        query = query.order_by(Generation.created_at.desc(), Generation.id.desc()).limit(limit)
        async with self._sessions() as session:
            return list(await session.scalars(query))

    async def cancel(self, generation_id: uuid.UUID, owner: str) -> tuple[CancelOutcome, Generation | None]:
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(Generation)
                .where(Generation.generation_id == generation_id, Generation.owner == owner)
                .with_for_update()
            )
            if row is None:
                return CancelOutcome.NOT_FOUND, None
            if row.status is not GenerationStatus.PENDING:
                return CancelOutcome.ALREADY_FINAL, row
            await _make_final(session, row, GenerationStatus.CANCELLED)
            return CancelOutcome.CANCELLED, row

    async def claim_due(
        self, *, limit: int, lease_s: float, max_attempts: int
    ) -> tuple[list[tuple[Generation, str]], list[Generation]]:
        """Claim up to `limit` due PENDING rows for one dispatch attempt each.

        The claim counts the attempt and pushes `nextAttemptAt` a lease ahead
        before anything is sent, so other dispatchers skip these rows (and a
        crash mid-send only delays them by the lease). Due rows that already
        had their last attempt timed out: they end FAILED here.

        Each claim mints a fresh callback token; only its hash is stored, so
        a token of an earlier dispatch no longer completes the generation.
        Returns ([(row, token)], timed_out).
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
            await _finalised(session, timed_out)
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
            claimed = [(row, secrets.token_urlsafe(32)) for row in claimed]
            if claimed:
                await session.execute(
                    update(Generation.__table__)
                    .where(Generation.__table__.c.id == bindparam("row_id"))
                    .values(callbackTokenHash=bindparam("token_hash")),
                    [{"row_id": row.id, "token_hash": token_hash(token)} for row, token in claimed],
                )
            changed = [row.generation_id for row in timed_out] + [row.generation_id for row, _ in claimed]
            await _notify_changed(session, changed)
            return claimed, timed_out

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
            final=True,
            status=GenerationStatus.FAILED,
            failure_reason=reason,
            last_error=error,
            completed_at=func.now(),
            next_attempt_at=None,
        )

    async def _update_pending(self, row_id: uuid.UUID, attempt: int, *, final: bool = False, **values) -> bool:
        """Update a row still PENDING at this attempt; a callback or a newer
        attempt that got there first wins."""
        async with self._sessions.begin() as session:
            row = await session.scalar(
                update(Generation)
                .where(
                    and_(
                        Generation.id == row_id,
                        Generation.status == GenerationStatus.PENDING,
                        Generation.attempts == attempt,
                    )
                )
                .values(updated_at=func.now(), **values)
                .returning(Generation)
            )
            if row is None:
                return False
            if final:
                await _finalised(session, [row])
            await _notify_changed(session, [row.generation_id])
            return True

    async def complete(self, generation_id: uuid.UUID, token: str, result: Result) -> CompletionOutcome:
        """Apply the AI's result, idempotently: one final state per generation.

        Only the token of the latest dispatch is accepted (compared in
        constant time); a result for a cancelled generation is dropped.
        """
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(Generation).where(Generation.generation_id == generation_id).with_for_update()
            )
            if row is None:
                return CompletionOutcome.NOT_FOUND
            if row.callback_token_hash is None or not hmac.compare_digest(row.callback_token_hash, token_hash(token)):
                return CompletionOutcome.BAD_TOKEN
            if row.status is GenerationStatus.CANCELLED:
                return CompletionOutcome.IGNORED
            if row.status is not GenerationStatus.PENDING:
                same = row.status is result.status and (
                    row.images == result.images
                    if result.images is not None
                    else row.failure_reason == result.failure_reason
                )
                return CompletionOutcome.DUPLICATE if same else CompletionOutcome.CONFLICT
            await _make_final(
                session, row, result.status, images=result.images or [], failure_reason=result.failure_reason
            )
            return CompletionOutcome.APPLIED
