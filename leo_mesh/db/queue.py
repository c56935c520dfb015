"""All SQL of a dispatch round: the mesh's queue and its workers' room, as
the dispatcher sees them. The decisions come from leo_mesh.scheduling
(who goes where) and leo_mesh.rules (what follows a failure).

A round runs under a transaction-level advisory lock, so one round at a
time runs across every api_server replica: two replicas never hand out the
same room of a worker, and the queue's virtual time moves in one order.
The round's sends happen after it commits; their outcomes are recorded in
a second transaction, only where the generation is still where the round
left it (a result or a cancel that came first wins).

What a round does, in order:
1. generations on workers that are gone (lease ended, or no such worker)
   go back to the queue;
2. generations sent to a worker that never acknowledged them within the
   start lease are sent again, to the same worker (a worker that took one
   takes the newer token; it never runs twice): a generation moves to
   another worker only once its worker is gone;
3. generations whose completion deadline passed (counted from their start
   on the worker) go back to the queue, or end FAILED when their attempts
   are used up; their workers are told to drop them;
4. the queue's first due generations go into the room live workers have
   (scheduling.assign), each with a new callback token; not those step 3
   took back: sent with the drop of the late job, a new start could reach
   the same worker first and be dropped with it. A later round sends them,
   after this round's drops.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from psycopg import AsyncConnection
from psycopg.rows import class_row

from leo_mesh import rules, scheduling
from leo_mesh.db import webhooks
from leo_mesh.db.generations import token_hash
from leo_mesh.db.notify import notify
from leo_mesh.db.pool import Database
from leo_mesh.db.rows import COLUMNS, GenerationRow, generation_rows
from leo_mesh.rules import Kind, Model
from leo_mesh.scheduling import Phase
from leo_mesh.telemetry import generations as counted

log = logging.getLogger("leo_mesh.queue")

# pg_advisory_xact_lock's key for a dispatch round ("leoqueue" in ASCII).
ROUND_LOCK = int.from_bytes(b"leoqueue", "big") & 0x7FFF_FFFF_FFFF_FFFF

GONE_ERROR = "its AI worker stopped heartbeating"
DEADLINE_ERROR = "its AI worker sent no result before the completion deadline"


@dataclass(frozen=True)
class Start:
    """A generation to start on a worker (a new dispatch, or the same one
    sent again when its acknowledgement never came)."""

    row: GenerationRow
    worker_id: uuid.UUID
    address: str
    callback_token: str
    trace_parent: str | None
    again: bool = False


@dataclass(frozen=True)
class Round:
    starts: list[Start] = field(default_factory=list)
    # Per worker address: generations it must drop (their deadline passed).
    drops: dict[str, list[str]] = field(default_factory=dict)
    # Generations that ended FAILED in the round (attempts used up).
    failed: list[GenerationRow] = field(default_factory=list)
    # Whether the round handed out all it could (the queue may hold more).
    full: bool = False


@dataclass(frozen=True)
class Taken:
    """A worker took the generation: it runs, or waits there for a slot."""

    start: Start
    running: bool
    taken_at: int


@dataclass(frozen=True)
class NotTaken:
    """The worker did not take it: back to the queue after `after_s`; the
    attempt counts or not; or the generation ends FAILED (`reason`)."""

    start: Start
    error: str
    after_s: float = 0.0
    counts: bool = True
    reason: str | None = None


@dataclass(frozen=True)
class _Worker:
    id: uuid.UUID
    address: str
    slots: int
    prefetch: int
    models: list[str]
    kinds: list[str]
    holding: int


@dataclass(frozen=True)
class _Candidate:
    id: uuid.UUID
    owner: str
    model: str
    kind: str
    tag: float
    attempts: int


@dataclass(frozen=True)
class _OnWorker:
    id: uuid.UUID
    phase: str
    attempts: int
    worker_id: uuid.UUID
    address: str | None
    generation_id: uuid.UUID


async def _rows(conn: AsyncConnection, sql: str, params: Sequence[object] = ()) -> list[GenerationRow]:
    async with conn.cursor(row_factory=generation_rows) as cursor:
        await cursor.execute(sql, params)
        return await cursor.fetchall()


# Due at once, even to the round that writes it: the column keeps
# milliseconds, and now() rounded up would lie ahead of now() itself.
DUE_NOW = "date_trunc('milliseconds', now())"

# What every way back to the queue sets.
REQUEUE = (
    'phase = \'QUEUED\', "workerId" = NULL, "takenAt" = NULL, "assignedAt" = NULL, "startedAt" = NULL,'
    ' progress = NULL, "updatedAt" = now()'
)


class QueueStore:
    def __init__(self, db: Database, *, webhook_body: Callable[[GenerationRow], str]) -> None:
        self._db = db
        self._webhook_body = webhook_body

    async def round(
        self,
        *,
        limit: int,
        max_running_per_owner: int,
        max_attempts: int,
        start_lease_s: float,
        worker_lease_s: float,
    ) -> Round:
        """One dispatch round's decisions, committed (see the module's docstring)."""
        async with self._db.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (ROUND_LOCK,))
            requeued = await self._requeue_from_gone_workers(conn, worker_lease_s)
            again, drops, failed, deadlines = await self._due_on_workers(conn, max_attempts, start_lease_s)
            starts, failed_in_queue, full = await self._hand_out(
                conn, limit, max_running_per_owner, max_attempts, start_lease_s, list(deadlines)
            )
            failed += failed_in_queue
            await webhooks.enqueue(conn, [(row, self._webhook_body(row)) for row in failed if row.webhook_url])
            changed = [
                *requeued,
                *deadlines.values(),
                *(s.row.generation_id for s in starts),
                *(r.generation_id for r in failed),
            ]
            await notify(conn, changed, queue=bool(changed))
        counted.finished(failed)
        return Round([*again, *starts], drops, failed, full)

    async def _requeue_from_gone_workers(self, conn: AsyncConnection, worker_lease_s: float) -> list[uuid.UUID]:
        # One read: the leases and the transaction's clock they are judged by.
        cursor = await conn.execute('SELECT now(), id, "heartbeatAt", "leaseExpiresAt", "aliveSince" FROM ai_workers')
        rows = await cursor.fetchall()
        if not rows:
            return []
        gone = scheduling.gone((scheduling.Lease(*row[1:]) for row in rows), rows[0][0], worker_lease_s)
        if not gone:
            return []
        log.warning("AI workers gone: their lease ended while others kept theirs", extra={"workers": len(gone)})
        await conn.execute("DELETE FROM ai_workers WHERE id = ANY(%s)", (gone,))
        cursor = await conn.execute(
            f'UPDATE generations SET {REQUEUE}, "nextAttemptAt" = {DUE_NOW}, "lastError" = %s'
            ' WHERE "workerId" = ANY(%s) AND status = \'PENDING\' RETURNING "generationId"',
            (GONE_ERROR, gone),
        )
        return [generation_id for (generation_id,) in await cursor.fetchall()]

    async def _due_on_workers(
        self, conn: AsyncConnection, max_attempts: int, start_lease_s: float
    ) -> tuple[list[Start], dict[str, list[str]], list[GenerationRow], dict[uuid.UUID, uuid.UUID]]:
        """Generations sent but not acknowledged within the start lease (sent
        again, to the same worker), and generations past their completion
        deadline (dropped from their worker, then queued again, returned
        by row id, or FAILED)."""
        async with conn.cursor(row_factory=class_row(_OnWorker)) as on_workers:
            await on_workers.execute(
                'SELECT g.id, g.phase::text AS phase, g.attempts, g."workerId" AS worker_id, w.address,'
                ' g."generationId" AS generation_id FROM generations g LEFT JOIN ai_workers w ON w.id = g."workerId"'
                " WHERE g.status = 'PENDING' AND g.phase IN ('STARTING', 'RUNNING') AND g.\"nextAttemptAt\" <= now()"
                " FOR UPDATE OF g SKIP LOCKED"
            )
            due = await on_workers.fetchall()
        unacknowledged = [d for d in due if d.phase == Phase.STARTING.value and d.address is not None]
        late = [d for d in due if d.phase == Phase.RUNNING.value]
        # Each send is an attempt: a worker that heartbeats but never answers
        # does not keep a generation forever.
        given_up = {d.id: rules.when_due(d.attempts, max_attempts) for d in unacknowledged}
        again = await self._send_again(conn, [d for d in unacknowledged if given_up[d.id] is None], start_lease_s)
        verdicts = {d.id: rules.when_due(d.attempts, max_attempts) for d in late}
        failed = await self._fail(
            conn, {row_id: v.reason for row_id, v in {**verdicts, **given_up}.items() if v is not None}
        )
        # Off their workers: the late ones, and those whose last send went unanswered.
        drops: dict[str, list[str]] = {}
        for d in [*late, *(d for d in unacknowledged if given_up[d.id] is not None)]:
            if d.address is not None:
                drops.setdefault(d.address, []).append(str(d.generation_id))
        back = [row_id for row_id, verdict in verdicts.items() if verdict is None]
        requeued: dict[uuid.UUID, uuid.UUID] = {}
        if back:
            cursor = await conn.execute(
                f'UPDATE generations SET {REQUEUE}, "nextAttemptAt" = {DUE_NOW}, "lastError" = %s'
                ' WHERE id = ANY(%s) RETURNING id, "generationId"',
                (DEADLINE_ERROR, back),
            )
            requeued = dict(await cursor.fetchall())
        counted.deadlines_missed(len(late))
        return again, drops, failed, requeued

    async def _send_again(self, conn: AsyncConnection, due: Sequence[_OnWorker], start_lease_s: float) -> list[Start]:
        if not due:
            return []
        tokens = {d.id: secrets.token_urlsafe(32) for d in due}
        rows = await _rows(
            conn,
            'UPDATE generations AS g SET "callbackTokenHash" = t.hash, attempts = g.attempts + 1,'
            ' "nextAttemptAt" = now() + make_interval(secs => %s)'
            " FROM unnest(%s::uuid[], %s::bytea[]) AS t(row_id, hash) WHERE g.id = t.row_id"
            f" RETURNING {COLUMNS}",
            (start_lease_s, list(tokens), [token_hash(token) for token in tokens.values()]),
        )
        trace_parents = await self._trace_parents(conn, [row.id for row in rows])
        by_id = {d.id: d for d in due}
        return [
            Start(
                row, by_id[row.id].worker_id, by_id[row.id].address or "", tokens[row.id], trace_parents[row.id], True
            )
            for row in rows
        ]

    async def _hand_out(
        self,
        conn: AsyncConnection,
        limit: int,
        max_running_per_owner: int,
        max_attempts: int,
        start_lease_s: float,
        held_back: Sequence[uuid.UUID],
    ) -> tuple[list[Start], list[GenerationRow], bool]:
        async with conn.cursor(row_factory=class_row(_Worker)) as live:
            await live.execute(
                "SELECT w.id, w.address, w.slots, w.prefetch, w.models::text[] AS models, w.kinds::text[] AS kinds,"
                " (SELECT count(*) FROM generations g WHERE g.\"workerId\" = w.id AND g.status = 'PENDING')::int"
                ' AS holding FROM ai_workers w WHERE NOT w.draining AND w."leaseExpiresAt" >= now()'
            )
            workers = [w for w in await live.fetchall() if w.holding < w.slots + w.prefetch]
        room = sum(w.slots + w.prefetch - w.holding for w in workers)
        if not workers:
            return [], [], False
        wanted = min(limit, room)
        counts = await conn.execute(
            "SELECT owner, count(*)::int FROM generations WHERE \"workerId\" IS NOT NULL AND status = 'PENDING'"
            " GROUP BY owner"
        )
        on_workers: dict[str, int] = dict(await counts.fetchall())
        # Read only what a worker with room makes (a model and kind it serves
        # both), of owners below their cap: the others would fill the
        # read-ahead and hold back the generations behind them.
        pairs = sorted({(m, k) for w in workers for m in w.models for k in w.kinds})
        capped = sorted(owner for owner, count in on_workers.items() if count >= max_running_per_owner)
        async with conn.cursor(row_factory=class_row(_Candidate)) as queued:
            # Some may be passed over (an owner reaching its cap in this
            # round): read ahead.
            await queued.execute(
                'SELECT id, owner, "coreModel"::text AS model, kind::text AS kind, "fairTag" AS tag, attempts'
                " FROM generations WHERE phase = 'QUEUED' AND status = 'PENDING' AND \"nextAttemptAt\" <= now()"
                ' AND ("coreModel"::text, kind::text) IN (SELECT * FROM unnest(%s::text[], %s::text[]))'
                " AND owner <> ALL(%s) AND id <> ALL(%s)"
                ' ORDER BY "fairTag", priority DESC, "createdAt" LIMIT %s FOR UPDATE SKIP LOCKED',
                ([m for m, _ in pairs], [k for _, k in pairs], capped, list(held_back), wanted * 4 + 16),
            )
            candidates = await queued.fetchall()
        if not candidates:
            return [], [], False
        verdicts = {c.id: rules.when_due(c.attempts, max_attempts) for c in candidates}
        failed = await self._fail(
            conn,
            {row_id: verdict.reason for row_id, verdict in verdicts.items() if verdict is not None},
        )
        eligible = [c for c in candidates if verdicts[c.id] is None]
        made = scheduling.assign(
            (scheduling.Candidate(c.id, c.owner, Model(c.model), Kind(c.kind), c.tag) for c in eligible),
            [
                scheduling.Worker(
                    w.id, w.slots, w.prefetch, frozenset(map(Model, w.models)), frozenset(map(Kind, w.kinds)), w.holding
                )
                for w in workers
            ],
            on_workers,
            max_running_per_owner,
            limit=wanted,
        )
        if not made:
            return [], failed, False
        tokens = {a.candidate.row_id: secrets.token_urlsafe(32) for a in made}
        worker_of = {a.candidate.row_id: a.worker_id for a in made}
        rows = await _rows(
            conn,
            'UPDATE generations AS g SET phase = \'STARTING\', "workerId" = t.worker, "assignedAt" = now(),'
            ' "takenAt" = NULL, "startedAt" = NULL, progress = NULL, attempts = g.attempts + 1,'
            ' "callbackTokenHash" = t.hash, "nextAttemptAt" = now() + make_interval(secs => %s), "updatedAt" = now()'
            " FROM unnest(%s::uuid[], %s::uuid[], %s::bytea[]) AS t(row_id, worker, hash) WHERE g.id = t.row_id"
            f" RETURNING {COLUMNS}",
            (
                start_lease_s,
                list(tokens),
                [worker_of[row_id] for row_id in tokens],
                [token_hash(token) for token in tokens.values()],
            ),
        )
        await conn.execute(
            'UPDATE queue_state SET "virtualTime" = %s',
            (scheduling.virtual_time_after(await self._virtual_time(conn), (a.candidate.tag for a in made)),),
        )
        trace_parents = await self._trace_parents(conn, [row.id for row in rows])
        addresses = {w.id: w.address for w in workers}
        starts = [
            Start(row, worker_of[row.id], addresses[worker_of[row.id]], tokens[row.id], trace_parents[row.id])
            for row in rows
        ]
        return starts, failed, len(made) >= limit

    @staticmethod
    async def _virtual_time(conn: AsyncConnection) -> float:
        cursor = await conn.execute('SELECT "virtualTime" FROM queue_state')
        found = await cursor.fetchone()
        return float(found[0]) if found else 0.0

    @staticmethod
    async def _trace_parents(conn: AsyncConnection, row_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str | None]:
        cursor = await conn.execute('SELECT id, "traceParent" FROM generations WHERE id = ANY(%s)', (list(row_ids),))
        return dict(await cursor.fetchall())

    @staticmethod
    async def _fail(conn: AsyncConnection, reasons: dict[uuid.UUID, str]) -> list[GenerationRow]:
        if not reasons:
            return []
        return await _rows(
            conn,
            'UPDATE generations AS g SET status = \'FAILED\', phase = NULL, "workerId" = NULL, "takenAt" = NULL,'
            ' "failureReason" = t.reason, "completedAt" = now(), "updatedAt" = now(), "nextAttemptAt" = NULL'
            " FROM unnest(%s::uuid[], %s::text[]) AS t(row_id, reason) WHERE g.id = t.row_id"
            f" RETURNING {COLUMNS}",
            (list(reasons), list(reasons.values())),
        )

    async def record_starts(
        self, outcomes: Sequence[Taken | NotTaken], *, completion_deadline_s: float
    ) -> list[GenerationRow]:
        """What the sends of a round led to, in one transaction, each only if
        the generation is still where the round left it: PENDING, STARTING on
        that worker, at that attempt (a worker that reported the job running
        meanwhile has it, whatever a late answer says). Returns the
        generations that ended FAILED."""
        taken = [o for o in outcomes if isinstance(o, Taken)]
        refused = [o for o in outcomes if isinstance(o, NotTaken) and o.reason is None]
        given_up = [o for o in outcomes if isinstance(o, NotTaken) and o.reason is not None]
        changed: list[uuid.UUID] = []
        failed: list[GenerationRow] = []
        async with self._db.transaction() as conn:
            # By id, as every statement that locks several generations does:
            # a batch of results or a heartbeat on the same rows waits, not deadlocks.
            await conn.execute(
                "SELECT 1 FROM generations WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                (sorted({o.start.row.id for o in outcomes}),),
            )
            if taken:
                cursor = await conn.execute(
                    "UPDATE generations AS g SET"
                    " phase = CASE WHEN t.running THEN 'RUNNING' ELSE 'HELD' END::generation_phase,"
                    ' "takenAt" = t.taken_at,'
                    ' "startedAt" = CASE WHEN t.running THEN now() ELSE g."startedAt" END,'
                    ' "nextAttemptAt" = CASE WHEN t.running THEN now() + make_interval(secs => %s) END'
                    " FROM unnest(%s::uuid[], %s::uuid[], %s::int[], %s::bool[], %s::bigint[])"
                    " AS t(row_id, worker, attempt, running, taken_at)"
                    " WHERE g.id = t.row_id AND g.status = 'PENDING' AND g.\"workerId\" = t.worker"
                    " AND g.attempts = t.attempt AND g.phase = 'STARTING'"
                    ' RETURNING g."generationId"',
                    (
                        completion_deadline_s,
                        [o.start.row.id for o in taken],
                        [o.start.worker_id for o in taken],
                        [o.start.row.attempts for o in taken],
                        [o.running for o in taken],
                        [o.taken_at for o in taken],
                    ),
                )
                changed += [generation_id for (generation_id,) in await cursor.fetchall()]
            if refused:
                cursor = await conn.execute(
                    f"UPDATE generations AS g SET {REQUEUE}, attempts = g.attempts - (NOT t.counts)::int,"
                    ' "nextAttemptAt" = now() + make_interval(secs => t.after_s), "lastError" = t.error'
                    " FROM unnest(%s::uuid[], %s::uuid[], %s::int[], %s::float8[], %s::text[], %s::bool[])"
                    " AS t(row_id, worker, attempt, after_s, error, counts)"
                    " WHERE g.id = t.row_id AND g.status = 'PENDING' AND g.\"workerId\" = t.worker"
                    " AND g.attempts = t.attempt AND g.phase = 'STARTING'"
                    ' RETURNING g."generationId"',
                    (
                        [o.start.row.id for o in refused],
                        [o.start.worker_id for o in refused],
                        [o.start.row.attempts for o in refused],
                        [o.after_s for o in refused],
                        [o.error for o in refused],
                        [o.counts for o in refused],
                    ),
                )
                changed += [generation_id for (generation_id,) in await cursor.fetchall()]
            if given_up:
                failed = await _rows(
                    conn,
                    "UPDATE generations AS g SET status = 'FAILED', phase = NULL, \"workerId\" = NULL,"
                    ' "takenAt" = NULL, "failureReason" = t.reason, "lastError" = t.error, "completedAt" = now(),'
                    ' "updatedAt" = now(), "nextAttemptAt" = NULL'
                    " FROM unnest(%s::uuid[], %s::uuid[], %s::int[], %s::text[], %s::text[])"
                    " AS t(row_id, worker, attempt, reason, error)"
                    " WHERE g.id = t.row_id AND g.status = 'PENDING' AND g.\"workerId\" = t.worker"
                    " AND g.attempts = t.attempt AND g.phase = 'STARTING'"
                    f" RETURNING {COLUMNS}",
                    (
                        [o.start.row.id for o in given_up],
                        [o.start.worker_id for o in given_up],
                        [o.start.row.attempts for o in given_up],
                        [o.reason for o in given_up],
                        [o.error for o in given_up],
                    ),
                )
                await webhooks.enqueue(conn, [(row, self._webhook_body(row)) for row in failed if row.webhook_url])
                changed += [row.generation_id for row in failed]
            await notify(conn, changed, queue=bool(refused or given_up))
        counted.finished(failed)
        return failed

    # --- the queue as clients see it ---

    async def snapshot(self) -> Snapshot:
        """Everything queued, the live workers and what they hold (api_server.queue_view)."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                'SELECT "generationId", "fairTag", extract(epoch FROM "createdAt")::float8, priority,'
                " \"coreModel\"::text, kind::text FROM generations WHERE phase = 'QUEUED'"
            )
            waiting = [
                scheduling.Waiting(gid, tag, created, scheduling.Priority(priority), Model(model), Kind(kind))
                for gid, tag, created, priority, model, kind in await cursor.fetchall()
            ]
            cursor = await conn.execute(
                "SELECT w.id, w.slots, w.models::text[], w.kinds::text[] FROM ai_workers w"
                ' WHERE NOT w.draining AND w."leaseExpiresAt" >= now()'
            )
            workers = {worker_id: (slots, models, kinds) for worker_id, slots, models, kinds in await cursor.fetchall()}
            cursor = await conn.execute(
                'SELECT "workerId", "coreModel"::text, kind::text,'
                ' COALESCE(extract(epoch FROM now() - "startedAt")::float8, 0) FROM generations'
                " WHERE \"workerId\" IS NOT NULL AND status = 'PENDING'"
            )
            held = [
                (worker_id, Model(model), Kind(kind), ran) for worker_id, model, kind, ran in await cursor.fetchall()
            ]
            cursor = await conn.execute("SELECT extract(epoch FROM now())::float8")
            now = await cursor.fetchone()
        return Snapshot(waiting, workers, held, now[0] if now else 0.0)

    async def recent_durations(self, within_s: float) -> dict[tuple[Model, Kind], float]:
        """The median time from start to result of each (model, kind)'s
        generations completed within the last `within_s` seconds."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                'SELECT "coreModel"::text, kind::text,'
                ' percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM "completedAt" - "startedAt"))'
                " FROM generations WHERE status = 'COMPLETE' AND \"startedAt\" IS NOT NULL"
                ' AND "completedAt" > now() - make_interval(secs => %s) GROUP BY 1, 2',
                (within_s,),
            )
            return {(Model(model), Kind(kind)): float(median) for model, kind, median in await cursor.fetchall()}


@dataclass(frozen=True)
class Snapshot:
    waiting: list[scheduling.Waiting]
    # Live workers by id: slots, models, kinds.
    workers: dict[uuid.UUID, tuple[int, list[str], list[str]]]
    # Generations on workers: worker, model, kind, seconds running (0 if not yet).
    held: list[tuple[uuid.UUID, Model, Kind, float]]
    # The database's clock when it was read (seconds since the epoch).
    taken_at: float
