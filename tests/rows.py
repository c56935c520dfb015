"""Rows the tests make or read straight in the database, in one place: the
SQL of the schema's (Prisma-spelled) columns stays here, not in the tests.

Each function takes the database's URL and opens a connection of its own;
an in-process test calls them through asyncio.to_thread, so the servers in
its event loop keep running meanwhile.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import psycopg


@dataclass(frozen=True)
class Dispatch:
    """What the dispatcher recorded of a generation."""

    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class Delivery:
    """A generation's webhook delivery, and the HTTP status of each attempt (None: no answer)."""

    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    status_codes: tuple[int | None, ...]


def _where(owner: str | None, ids: Iterable[str] | None) -> tuple[str, list[object]]:
    clauses, params = [], []
    if owner is not None:
        clauses.append("owner = %s")
        params.append(owner)
    if ids is not None:
        clauses.append('"generationId" = ANY(%s::uuid[])')
        params.append(list(ids))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def count_generations(database_url: str, *, owner: str | None = None) -> int:
    where, params = _where(owner, None)
    with psycopg.connect(database_url) as conn:
        return conn.execute(f"SELECT count(*) FROM generations{where}", params).fetchone()[0]


def statuses(database_url: str, *, owner: str | None = None, ids: Iterable[str] | None = None) -> dict[str, int]:
    """How many generations (of `owner`, or among `ids`) are in each status."""
    where, params = _where(owner, ids)
    with psycopg.connect(database_url) as conn:
        return dict(conn.execute(f"SELECT status::text, count(*) FROM generations{where} GROUP BY 1", params))


def generation_ids(database_url: str, owner: str) -> list[str]:
    """The ids of `owner`'s generations, oldest first."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            'SELECT "generationId"::text FROM generations WHERE owner = %s ORDER BY "createdAt", id', (owner,)
        )
        return [generation_id for (generation_id,) in rows]


def dispatch(database_url: str, generation_id: str) -> Dispatch:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            'SELECT status::text, attempts, "lastError", "nextAttemptAt" FROM generations WHERE "generationId" = %s',
            (generation_id,),
        ).fetchone()
    assert row is not None, f"no generation {generation_id}"
    return Dispatch(*row)


def attempts(database_url: str, *, owner: str | None = None, ids: Iterable[str] | None = None) -> list[int]:
    """The attempts of each generation (of `owner`, or among `ids`)."""
    where, params = _where(owner, ids)
    with psycopg.connect(database_url) as conn:
        return [n for (n,) in conn.execute(f"SELECT attempts FROM generations{where}", params)]


def outcomes(database_url: str, owner: str) -> list[tuple[str, str, int, str | None]]:
    """(status, model, attempts, failure reason) of each of `owner`'s generations."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            'SELECT status::text, "coreModel"::text, attempts, "failureReason" FROM generations WHERE owner = %s',
            (owner,),
        ).fetchall()


def held_by_the_ai(database_url: str, ids: Iterable[str]) -> int:
    """How many of `ids` were accepted by the AI on their first dispatch and await its result."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM generations WHERE attempts = 1 AND status = 'PENDING'"
            ' AND "lastError" IS NULL AND "nextAttemptAt" > now() AND "generationId" = ANY(%s::uuid[])',
            (list(ids),),
        ).fetchone()[0]


def queue_positions(database_url: str, owner: str) -> list[int]:
    """The queue places the AI last reported for `owner`'s generations."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            'SELECT "queuePosition" FROM generations WHERE owner = %s AND "queuePosition" IS NOT NULL', (owner,)
        )
        return [position for (position,) in rows]


def make_held(database_url: str, count: int, *, token: str, owner: str) -> list[str]:
    """`count` generations of `owner` as a first dispatch leaves them while the
    AI holds them (one attempt, `token`'s hash stored, not due again); their ids."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    token_hash = hashlib.sha256(token.encode()).digest()
    with psycopg.connect(database_url) as conn, conn.cursor() as cursor:
        cursor.executemany(
            'INSERT INTO generations (id, "generationId", "updatedAt", prompt, owner, attempts, "callbackTokenHash")'
            " VALUES (gen_random_uuid(), %s, now(), 'held', %s, 1, %s)",
            [(generation_id, owner, token_hash) for generation_id in ids],
        )
    return ids


def delivery(database_url: str, generation_id: str) -> Delivery | None:
    """The webhook delivery of a generation (None until it is final)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            'SELECT id, status::text, attempts, "lastError", "nextAttemptAt" FROM webhook_deliveries'
            ' WHERE "generationId" = %s',
            (generation_id,),
        ).fetchone()
        if row is None:
            return None
        codes = conn.execute(
            'SELECT "statusCode" FROM webhook_attempts WHERE "deliveryId" = %s ORDER BY attempt', (row[0],)
        )
        return Delivery(*row[1:], status_codes=tuple(code for (code,) in codes))
