"""All SQL about the AI workers' heartbeats; the decisions come from
leo_mesh.scheduling.reconcile.

A heartbeat renews its worker's lease and says what the worker holds; in
one transaction it is compared with what the mesh assigned to that worker:
generations it holds but no longer owns are to be dropped (the answer
names them), generations it started are RUNNING from when it started them
(their completion deadline counted from there), and generations it took
and holds no more go back to the queue. A worker's first heartbeat joins
it to the pool, a change of its room (slots, prefetch, draining) or its
leaving wakes the dispatchers (NOTIFY on QUEUE_CHANNEL).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg.rows import class_row

from leo_mesh import scheduling
from leo_mesh.db.notify import notify
from leo_mesh.db.pool import Database
from leo_mesh.db.queue import DUE_NOW, REQUEUE
from leo_mesh.rules import Kind, Model
from leo_mesh.scheduling import Held, Phase, Reported

LOST_ERROR = "its AI worker no longer held it"
LEFT_ERROR = "its AI worker left the pool"


@dataclass(frozen=True)
class Heartbeat:
    worker_id: uuid.UUID
    address: str
    slots: int
    prefetch: int
    models: frozenset[Model]
    kinds: frozenset[Kind]
    number: int
    draining: bool
    leaving: bool
    # What the worker holds, by generation id.
    jobs: dict[uuid.UUID, Reported]


@dataclass(frozen=True)
class _Room:
    address: str
    slots: int
    prefetch: int
    draining: bool
    heartbeat: int


@dataclass(frozen=True)
class _Assigned:
    id: uuid.UUID
    generation_id: uuid.UUID
    phase: str
    taken_at: int | None


class WorkerStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def heartbeat(self, beat: Heartbeat, *, lease_s: float, completion_deadline_s: float) -> list[uuid.UUID]:
        """Record a heartbeat; returns the generations the worker must drop."""
        async with self._db.transaction() as conn:
            async with conn.cursor(row_factory=class_row(_Room)) as cursor:
                await cursor.execute(
                    "SELECT address, slots, prefetch, draining, heartbeat FROM ai_workers WHERE id = %s FOR UPDATE",
                    (beat.worker_id,),
                )
                before = await cursor.fetchone()
            if before is not None and beat.number <= before.heartbeat:
                return []  # a heartbeat that arrived late: a newer one has said more
            if beat.leaving:
                await conn.execute("DELETE FROM ai_workers WHERE id = %s", (beat.worker_id,))
            else:
                await conn.execute(
                    "INSERT INTO ai_workers (id, address, slots, prefetch, models, kinds, draining, heartbeat,"
                    ' "leaseExpiresAt") VALUES (%s, %s, %s, %s, %s::core_models[], %s::generation_kind[], %s, %s,'
                    " now() + make_interval(secs => %s))"
                    " ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, slots = EXCLUDED.slots,"
                    " prefetch = EXCLUDED.prefetch, models = EXCLUDED.models, kinds = EXCLUDED.kinds,"
                    ' draining = EXCLUDED.draining, heartbeat = EXCLUDED.heartbeat, "heartbeatAt" = now(),'
                    ' "leaseExpiresAt" = EXCLUDED."leaseExpiresAt",'
                    # Back after its lease ended: kept without a break only from now.
                    ' "aliveSince" = CASE WHEN ai_workers."leaseExpiresAt" < now() THEN now()'
                    ' ELSE ai_workers."aliveSince" END',
                    (
                        beat.worker_id,
                        beat.address,
                        beat.slots,
                        beat.prefetch,
                        sorted(m.value for m in beat.models),
                        sorted(k.value for k in beat.kinds),
                        beat.draining,
                        beat.number,
                        lease_s,
                    ),
                )
            # By id, as every statement that locks several generations does:
            # a batch of results or reports of this worker waits, not deadlocks.
            async with conn.cursor(row_factory=class_row(_Assigned)) as cursor:
                await cursor.execute(
                    'SELECT id, "generationId" AS generation_id, phase::text AS phase, "takenAt" AS taken_at'
                    " FROM generations WHERE \"workerId\" = %s AND status = 'PENDING' ORDER BY id FOR UPDATE",
                    (beat.worker_id,),
                )
                assigned = {a.generation_id: a for a in await cursor.fetchall()}
            seen = scheduling.reconcile(
                {gid: Held(Phase(a.phase), a.taken_at) for gid, a in assigned.items()},
                beat.jobs,
                # Leaving: whatever it still holds is no longer its.
                beat.number if not beat.leaving else beat.number + 1,
            )
            lost = set(seen.lost)
            if beat.leaving:
                lost |= set(assigned)
            changed = [
                *await self._started(conn, beat.worker_id, seen.started, beat.number, completion_deadline_s),
                *await self._taken(conn, beat.worker_id, seen.taken, beat.number),
                *await self._requeue(
                    conn, [assigned[gid].id for gid in lost], LEFT_ERROR if beat.leaving else LOST_ERROR
                ),
            ]
            room_changed = (
                before is None
                or beat.leaving
                or (before.slots, before.prefetch, before.draining)
                != (
                    beat.slots,
                    beat.prefetch,
                    beat.draining,
                )
            )
            await notify(conn, changed, queue=room_changed or bool(lost))
        return sorted(seen.drop) if not beat.leaving else sorted(set(seen.drop) | set(beat.jobs))

    @staticmethod
    async def _started(
        conn: AsyncConnection,
        worker_id: uuid.UUID,
        started: Mapping[uuid.UUID, float],
        number: int,
        completion_deadline_s: float,
    ) -> list[uuid.UUID]:
        """RUNNING since the worker started them; the deadline counts from there."""
        if not started:
            return []
        cursor = await conn.execute(
            'UPDATE generations AS g SET phase = \'RUNNING\', "takenAt" = COALESCE(g."takenAt", %s),'
            ' "startedAt" = now() - make_interval(secs => t.running_for),'
            ' "nextAttemptAt" = now() - make_interval(secs => t.running_for) + make_interval(secs => %s)'
            " FROM unnest(%s::uuid[], %s::float8[]) AS t(gid, running_for)"
            ' WHERE g."generationId" = t.gid AND g."workerId" = %s AND g.status = \'PENDING\''
            ' RETURNING g."generationId"',
            (number, completion_deadline_s, list(started), list(started.values()), worker_id),
        )
        return [gid for (gid,) in await cursor.fetchall()]

    @staticmethod
    async def _taken(
        conn: AsyncConnection, worker_id: uuid.UUID, taken: frozenset[uuid.UUID], number: int
    ) -> list[uuid.UUID]:
        if not taken:
            return []
        cursor = await conn.execute(
            'UPDATE generations SET phase = \'HELD\', "takenAt" = %s, "nextAttemptAt" = NULL'
            " WHERE \"generationId\" = ANY(%s) AND \"workerId\" = %s AND status = 'PENDING' AND phase = 'STARTING'"
            ' RETURNING "generationId"',
            (number, list(taken), worker_id),
        )
        return [gid for (gid,) in await cursor.fetchall()]

    @staticmethod
    async def _requeue(conn: AsyncConnection, row_ids: Sequence[uuid.UUID], error: str) -> list[uuid.UUID]:
        if not row_ids:
            return []
        cursor = await conn.execute(
            f'UPDATE generations SET {REQUEUE}, "nextAttemptAt" = {DUE_NOW}, "lastError" = %s'
            ' WHERE id = ANY(%s) RETURNING "generationId"',
            (error, list(row_ids)),
        )
        return [gid for (gid,) in await cursor.fetchall()]
