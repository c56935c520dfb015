"""Rows the tests make or read straight in the database, in one place: the
SQL of the schema's (Prisma-spelled) columns stays here, not in the tests.

Each function takes the database's URL and opens a connection of its own;
an in-process test calls them through asyncio.to_thread, so the servers in
its event loop keep running meanwhile.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator
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


def phases(database_url: str, ids: Iterable[str]) -> dict[str, int]:
    """How many of `ids` are in each phase (a final one has none: "FINAL")."""
    with psycopg.connect(database_url) as conn:
        return dict(
            conn.execute(
                "SELECT COALESCE(phase::text, 'FINAL'), count(*) FROM generations"
                ' WHERE "generationId" = ANY(%s::uuid[]) GROUP BY 1',
                (list(ids),),
            )
        )


def on_workers(database_url: str, ids: Iterable[str]) -> int:
    """How many of `ids` a worker has taken (held there or running) on their first dispatch."""
    found = phases(database_url, ids)
    return found.get("HELD", 0) + found.get("RUNNING", 0)


# The worker tests put in the pool themselves (a stub answers for it).
FAKE_WORKER_ID = uuid.UUID("00000000-0000-4000-8000-00000000fa4e")
FAKE_WORKER_ADDRESS = "fake-ai-worker:1"


def add_worker(
    database_url: str,
    *,
    worker_id: uuid.UUID | None = None,
    address: str = FAKE_WORKER_ADDRESS,
    slots: int = 1000,
    prefetch: int = 0,
    models: str = "{SD,SDXL}",
    kinds: str = "{IMAGE,VIDEO}",
    lease_s: float = 86400,
    alive_for_s: float = 3600,
    draining: bool = False,
) -> uuid.UUID:
    """A worker in the pool that never heartbeats (its lease outlasts the
    test unless `lease_s` says otherwise); the same id again changes nothing."""
    worker_id = worker_id or uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ai_workers (id, address, slots, prefetch, models, kinds, draining, heartbeat,"
            ' "leaseExpiresAt", "aliveSince") VALUES (%s, %s, %s, %s, %s, %s, %s, 1,'
            " now() + make_interval(secs => %s), now() - make_interval(secs => %s)) ON CONFLICT (id) DO NOTHING",
            (worker_id, address, slots, prefetch, models, kinds, draining, lease_s, alive_for_s),
        )
    return worker_id


def ensure_worker(database_url: str) -> uuid.UUID:
    """The pool's one ample worker (FAKE_WORKER_ID), added if it is not there."""
    return add_worker(database_url, worker_id=FAKE_WORKER_ID)


def requeue(database_url: str, generation_id: str) -> None:
    """Back in the queue and due, as when its completion deadline passed."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            'UPDATE generations SET phase = \'QUEUED\', "workerId" = NULL, "takenAt" = NULL,'
            ' "nextAttemptAt" = now() WHERE "generationId" = %s AND status = \'PENDING\'',
            (generation_id,),
        )


def backdate(database_url: str, generation_id: str, seconds: float) -> None:
    """As if the generation had been created `seconds` ago."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            'UPDATE generations SET "createdAt" = now() - make_interval(secs => %s) WHERE "generationId" = %s',
            (seconds, generation_id),
        )


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


@dataclass(frozen=True)
class Placement:
    """Where a generation is on its way to a worker, as the queue recorded it,
    and the database's clock when it was read."""

    status: str
    phase: str | None
    worker_id: uuid.UUID | None
    taken_at: int | None
    assigned_at: datetime | None
    started_at: datetime | None
    next_attempt_at: datetime | None
    attempts: int
    last_error: str | None
    failure_reason: str | None
    read_at: datetime


def placement(database_url: str, generation_id: uuid.UUID | str) -> Placement:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            'SELECT status::text, phase::text, "workerId", "takenAt", "assignedAt", "startedAt", "nextAttemptAt",'
            ' attempts, "lastError", "failureReason", clock_timestamp() FROM generations WHERE "generationId" = %s',
            (generation_id,),
        ).fetchone()
    assert row is not None, f"no generation {generation_id}"
    return Placement(*row)


def clock(database_url: str) -> datetime:
    """The database's clock now."""
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT clock_timestamp()").fetchone()[0]


def queued_since(database_url: str, generation_id: uuid.UUID | str, seconds_ago: float) -> None:
    """As if the generation had been created, and queued, `seconds_ago` seconds ago."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            'UPDATE generations SET "createdAt" = "createdAt" - make_interval(secs => %s),'
            ' "updatedAt" = "updatedAt" - make_interval(secs => %s) WHERE "generationId" = %s',
            (seconds_ago, seconds_ago, generation_id),
        )


def make_due(database_url: str, generation_id: uuid.UUID | str) -> None:
    """As if the time the queue gave the generation had passed: its retry
    delay, its start lease or its completion deadline."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            'UPDATE generations SET "nextAttemptAt" = now() - interval \'1 second\' WHERE "generationId" = %s',
            (generation_id,),
        )


@dataclass(frozen=True)
class WorkerRow:
    """A worker of the pool as its heartbeats left it."""

    address: str
    slots: int
    prefetch: int
    models: list[str]
    kinds: list[str]
    draining: bool
    heartbeat: int
    lease_expires_at: datetime


def worker(database_url: str, worker_id: uuid.UUID) -> WorkerRow | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT address, slots, prefetch, models::text[], kinds::text[], draining, heartbeat,"
            ' "leaseExpiresAt" FROM ai_workers WHERE id = %s',
            (worker_id,),
        ).fetchone()
    return WorkerRow(*row) if row else None


def end_lease(database_url: str, worker_id: uuid.UUID) -> None:
    """As if the worker had stopped heartbeating a while ago: its lease has ended."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE ai_workers SET \"leaseExpiresAt\" = now() - interval '1 second' WHERE id = %s", (worker_id,)
        )


def holding(database_url: str) -> dict[uuid.UUID, int]:
    """How many PENDING generations each worker has on it."""
    with psycopg.connect(database_url) as conn:
        return dict(
            conn.execute(
                'SELECT "workerId", count(*) FROM generations WHERE "workerId" IS NOT NULL AND status = \'PENDING\''
                " GROUP BY 1"
            )
        )


def virtual_time(database_url: str) -> float:
    with psycopg.connect(database_url) as conn:
        return conn.execute('SELECT "virtualTime" FROM queue_state').fetchone()[0]


def set_draining(database_url: str, worker_id: uuid.UUID) -> None:
    """As if the worker's last heartbeat had said it drains."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE ai_workers SET draining = true WHERE id = %s", (worker_id,))


@contextlib.contextmanager
def virtual_time_locked(database_url: str) -> Iterator[None]:
    """The queue's virtual time locked (every dispatch round that hands
    something out writes it before it commits) until the block ends."""
    with psycopg.connect(database_url) as conn:
        conn.execute('SELECT "virtualTime" FROM queue_state FOR UPDATE')
        yield


def waiting_for_locks(database_url: str) -> int:
    """How many sessions of the database wait for a lock now."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()[0]


def ran(database_url: str, generation_id: uuid.UUID | str, seconds: float, *, ended_ago_s: float = 0) -> None:
    """As if the final generation had run for `seconds` on its worker,
    ending `ended_ago_s` seconds ago."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            'UPDATE generations SET "completedAt" = now() - make_interval(secs => %s),'
            ' "startedAt" = now() - make_interval(secs => %s) WHERE "generationId" = %s',
            (ended_ago_s, ended_ago_s + seconds, generation_id),
        )
