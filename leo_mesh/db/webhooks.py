"""All SQL about webhooks: per-owner signing secrets and durable deliveries.

A delivery is its own outbox entry, claimed like a PENDING generation (see
GenerationStore.claim_due): `nextAttemptAt` says when a sender must next
look at it (a retry, or the end of a claim lease). Every attempt is recorded
in webhook_attempts; what follows an attempt is rules.after_webhook_attempt's.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg.rows import class_row, dict_row

from leo_mesh import rules
from leo_mesh.db.pool import Database
from leo_mesh.db.rows import GenerationRow

SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class ClaimedDelivery:
    id: uuid.UUID
    generation_id: uuid.UUID
    url: str
    # The exact body every attempt sends.
    payload: str
    attempt: int
    # The owner's current signing secret.
    secret: str
    # The generation's create traceparent, which the delivery continues.
    trace_parent: str | None = None


@dataclass(frozen=True)
class _DueDelivery:
    id: uuid.UUID
    attempts: int
    # The owner's current signing secret, if it has one.
    secret: str | None
    trace_parent: str | None


def new_secret() -> str:
    """A Standard Webhooks secret: "whsec_" + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


async def enqueue(conn: AsyncConnection, finished: Sequence[tuple[GenerationRow, str]]) -> None:
    """Queue the webhooks of generations that just reached their final state,
    inside the caller's transaction: a delivery exists if and only if its
    final state commits. Rows without an owner or URL, or that have a
    delivery already, are skipped."""
    finished = [(row, body) for row, body in finished if row.webhook_url and row.owner]
    if not finished:
        return
    await conn.execute(
        'INSERT INTO webhook_deliveries (id, "generationId", owner, url, payload, status, "nextAttemptAt")'
        " SELECT id, gid, owner, url, payload, 'PENDING', now()"
        " FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::text[]) AS t(id, gid, owner, url, payload)"
        ' ON CONFLICT ("generationId") DO NOTHING',
        (
            [uuid.uuid4() for _ in finished],
            [row.generation_id for row, _ in finished],
            [row.owner for row, _ in finished],
            [row.webhook_url for row, _ in finished],
            [body for _, body in finished],
        ),
    )


class WebhookStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def rotate_secret(self, owner: str) -> str:
        """Replace the owner's secret with a new one and return it; it is
        shown only here. Deliveries claimed from now on are signed with it."""
        secret = new_secret()
        async with self._db.connection() as conn:
            await conn.execute(
                "INSERT INTO webhook_secrets (owner, secret) VALUES (%s, %s)"
                ' ON CONFLICT (owner) DO UPDATE SET secret = EXCLUDED.secret, "rotatedAt" = now()',
                (owner, secret),
            )
        return secret

    async def has_secret(self, owner: str) -> bool:
        async with self._db.connection() as conn:
            cursor = await conn.execute("SELECT 1 FROM webhook_secrets WHERE owner = %s", (owner,))
            return await cursor.fetchone() is not None

    async def claim_due(self, *, limit: int, lease_s: float, max_attempts: int) -> list[ClaimedDelivery]:
        """Claim up to `limit` due deliveries for one attempt each, with the
        owner's current secret.

        The claim counts the attempt and pushes `nextAttemptAt` a lease ahead
        before anything is sent, so other senders skip these rows (and a
        crash mid-send only delays them by the lease). Due rows that cannot
        be attempted end FAILED here (rules.when_webhook_due).
        """
        async with self._db.transaction() as conn:
            async with conn.cursor(row_factory=class_row(_DueDelivery)) as cursor:
                await cursor.execute(
                    'SELECT d.id, d.attempts, s.secret, g."traceParent" AS trace_parent FROM webhook_deliveries d'
                    " LEFT JOIN webhook_secrets s ON s.owner = d.owner"
                    ' JOIN generations g ON g."generationId" = d."generationId"'
                    " WHERE d.status = 'PENDING' AND d.\"nextAttemptAt\" <= now()"
                    ' ORDER BY d."nextAttemptAt" LIMIT %s FOR UPDATE OF d SKIP LOCKED',
                    (limit,),
                )
                due = await cursor.fetchall()
            if not due:
                return []
            secrets_by_id: dict[uuid.UUID, str] = {}
            failed: dict[uuid.UUID, str] = {}
            for delivery in due:
                has_secret = delivery.secret is not None
                verdict = rules.when_webhook_due(delivery.attempts, max_attempts, has_secret=has_secret)
                if verdict is not None:
                    failed[delivery.id] = verdict.reason
                else:
                    assert delivery.secret is not None  # an attempt is made only with a secret
                    secrets_by_id[delivery.id] = delivery.secret
            trace_parents = {delivery.id: delivery.trace_parent for delivery in due}
            async with conn.cursor(row_factory=dict_row) as cursor:
                await cursor.execute(
                    "UPDATE webhook_deliveries SET attempts = attempts + 1,"
                    ' "nextAttemptAt" = now() + make_interval(secs => %s), "updatedAt" = now()'
                    " WHERE id = ANY(%s)"
                    ' RETURNING id, "generationId" AS generation_id, url, payload, attempts AS attempt',
                    (lease_s, list(secrets_by_id)),
                )
                claimed = [
                    ClaimedDelivery(
                        **record, secret=secrets_by_id[record["id"]], trace_parent=trace_parents[record["id"]]
                    )
                    for record in await cursor.fetchall()
                ]
            if failed:
                await conn.execute(
                    "UPDATE webhook_deliveries AS d SET status = 'FAILED', \"lastError\" = t.error,"
                    ' "nextAttemptAt" = NULL, "updatedAt" = now()'
                    " FROM unnest(%s::uuid[], %s::text[]) AS t(delivery_id, error) WHERE d.id = t.delivery_id",
                    (list(failed), list(failed.values())),
                )
            return claimed

    async def record_attempt(
        self,
        delivery_id: uuid.UUID,
        attempt: int,
        *,
        status_code: int | None,
        error: str | None,
        ms: int,
        decision: rules.DeliveryDecision,
    ) -> bool:
        """Record an attempt and apply what follows it, in one transaction.

        Only if this attempt still owns the delivery (still PENDING at this
        attempt number); returns whether it did.
        """
        status = {rules.Delivery.DELIVERED: "DELIVERED", rules.Delivery.FAILED: "FAILED"}.get(
            decision.outcome, "PENDING"
        )
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                'UPDATE webhook_deliveries SET status = %s::delivery_status, "lastError" = %s, "updatedAt" = now(),'
                ' "deliveredAt" = CASE WHEN %s THEN now() END,'
                ' "nextAttemptAt" = CASE WHEN %s::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => %s) END'
                " WHERE id = %s AND status = 'PENDING' AND attempts = %s",
                (
                    status,
                    error,
                    decision.outcome is rules.Delivery.DELIVERED,
                    decision.delay_s,
                    decision.delay_s,
                    delivery_id,
                    attempt,
                ),
            )
            if cursor.rowcount != 1:
                return False
            await conn.execute(
                'INSERT INTO webhook_attempts ("deliveryId", attempt, "statusCode", error, ms)'
                " VALUES (%s, %s, %s, %s, %s)",
                (delivery_id, attempt, status_code, error, ms),
            )
            return True
