"""All SQL about webhooks: per-owner signing secrets and durable deliveries.

A delivery is its own outbox entry, claimed like a PENDING generation (see
GenerationStore.claim_due): `nextAttemptAt` says when a sender must next
look at it (a retry, or the end of a claim lease). Every attempt is recorded
in webhook_attempts.
"""

from __future__ import annotations

import base64
import enum
import json
import secrets
import uuid
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from sqlalchemy import exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from leo_mesh.db.models import (
    DeliveryStatus,
    Generation,
    GenerationStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSecret,
)

EVENT_TYPES = {
    GenerationStatus.COMPLETE: "generation.completed",
    GenerationStatus.FAILED: "generation.failed",
    GenerationStatus.CANCELLED: "generation.cancelled",
}

NO_SECRET_ERROR = "the owner has no webhook secret: rotate one (RotateWebhookSecret) before using webhooks"


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # try again after a delay
    FAILED = "failed"  # no more attempts


class ClaimedDelivery(NamedTuple):
    delivery: WebhookDelivery
    secret: str


def _new_secret() -> str:
    """A Standard Webhooks secret: "whsec_" + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _rfc3339(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _payload(generation: Generation, data: dict) -> str:
    """The body every attempt sends: compact JSON, serialized once."""
    event = {"type": EVENT_TYPES[generation.status], "timestamp": _rfc3339(generation.completed_at), "data": data}
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


class WebhookStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def rotate_secret(self, owner: str) -> str:
        """Replace the owner's secret with a new one and return it; it is
        shown only here. Deliveries claimed from now on are signed with it."""
        secret = _new_secret()
        async with self._sessions.begin() as session:
            await session.execute(
                insert(WebhookSecret)
                .values(owner=owner, secret=secret)
                .on_conflict_do_update(
                    index_elements=[WebhookSecret.owner], set_={"secret": secret, "rotatedAt": func.now()}
                )
            )
        return secret

    async def has_secret(self, owner: str) -> bool:
        async with self._sessions() as session:
            return bool(await session.scalar(select(exists().where(WebhookSecret.owner == owner))))

    @staticmethod
    async def enqueue(session: AsyncSession, generation: Generation, data: dict) -> None:
        """Queue the webhook of a generation that just reached its final state.

        Runs inside the caller's transaction, so the delivery exists if and
        only if the final state is committed. `generation` must be flushed
        and refreshed (final status and completedAt loaded); `data` is the
        generation as the public API shows it (proto3 JSON). Nothing happens
        without a webhook_url or owner, or if a delivery already exists.
        """
        if generation.webhook_url is None or generation.owner is None:
            return
        if generation.status not in EVENT_TYPES or not isinstance(generation.completed_at, datetime):
            raise ValueError("enqueue needs a generation in a final state, with completedAt loaded")
        await session.execute(
            insert(WebhookDelivery)
            .values(
                id=uuid.uuid4(),
                generation_id=generation.generation_id,
                owner=generation.owner,
                url=generation.webhook_url,
                payload=_payload(generation, data),
                status=DeliveryStatus.PENDING,
                next_attempt_at=func.now(),
            )
            .on_conflict_do_nothing(index_elements=[WebhookDelivery.generation_id])
        )

    async def claim_due(self, *, limit: int, lease_s: float, max_attempts: int) -> list[ClaimedDelivery]:
        """Claim up to `limit` due deliveries for one attempt each, with the
        owner's current secret.

        The claim counts the attempt and pushes `nextAttemptAt` a lease ahead
        before anything is sent, so other senders skip these rows (and a
        crash mid-send only delays them by the lease). Due rows that cannot
        be attempted end FAILED here: those whose last attempt was claimed
        but never recorded, and those whose owner has no secret.
        """
        async with self._sessions.begin() as session:
            ids = list(
                await session.scalars(
                    select(WebhookDelivery.id)
                    .where(
                        WebhookDelivery.status == DeliveryStatus.PENDING,
                        WebhookDelivery.next_attempt_at <= func.now(),
                    )
                    .order_by(WebhookDelivery.next_attempt_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            if not ids:
                return []
            has_secret = exists().where(WebhookSecret.owner == WebhookDelivery.owner)
            await self._fail_due(
                session,
                WebhookDelivery.id.in_(ids),
                WebhookDelivery.attempts >= max_attempts,
                error=func.concat("no result recorded for the last attempt (", WebhookDelivery.attempts, ")"),
            )
            await self._fail_due(session, WebhookDelivery.id.in_(ids), ~has_secret, error=NO_SECRET_ERROR)
            claimed = await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id.in_(ids),
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.attempts < max_attempts,
                    WebhookDelivery.owner == WebhookSecret.owner,
                )
                .values(
                    attempts=WebhookDelivery.attempts + 1,
                    next_attempt_at=func.now() + timedelta(seconds=lease_s),
                    updated_at=func.now(),
                )
                .returning(WebhookDelivery, WebhookSecret.secret)
                .execution_options(synchronize_session=False)
            )
            return [ClaimedDelivery(delivery, secret) for delivery, secret in claimed]

    @staticmethod
    async def _fail_due(session: AsyncSession, *where, error) -> None:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.status == DeliveryStatus.PENDING, *where)
            .values(status=DeliveryStatus.FAILED, last_error=error, next_attempt_at=None, updated_at=func.now())
        )

    async def record_attempt(
        self,
        delivery_id: uuid.UUID,
        attempt: int,
        *,
        status_code: int | None,
        error: str | None,
        ms: int,
        outcome: Outcome,
        retry_delay_s: float | None = None,
    ) -> bool:
        """Record an attempt and apply its outcome, in one transaction.

        Only if this attempt still owns the delivery (still PENDING at this
        attempt number); returns whether it did. RETRY needs retry_delay_s.
        """
        values: dict = {"last_error": error, "updated_at": func.now()}
        if outcome is Outcome.DELIVERED:
            values |= {"status": DeliveryStatus.DELIVERED, "delivered_at": func.now(), "next_attempt_at": None}
        elif outcome is Outcome.FAILED:
            values |= {"status": DeliveryStatus.FAILED, "next_attempt_at": None}
        elif retry_delay_s is None:
            raise ValueError("a RETRY outcome needs retry_delay_s")
        else:
            values["next_attempt_at"] = func.now() + timedelta(seconds=retry_delay_s)
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == delivery_id,
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.attempts == attempt,
                )
                .values(**values)
            )
            if result.rowcount != 1:
                return False
            session.add(
                WebhookAttempt(delivery_id=delivery_id, attempt=attempt, status_code=status_code, error=error, ms=ms)
            )
            return True
