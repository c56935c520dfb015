"""All SQL about generations; the decisions come from leo_mesh.rules.

Each write method reads the state it needs (locking it), asks the rules what
to do, and writes what they decided. Writes that arrive together commit
together (group commit, leo_mesh.db.group_commit): a batch is decided by the
rules' folds (`decide_creates`, `decide_completions`,
`decide_progress_reports`), each item against the state as the items before
it left it, so a batch changes and answers what its items would one by one.

A PENDING row is its own entry in the mesh's queue (leo_mesh.db.queue
dispatches it): a create queues it with its fair-share tag
(leo_mesh.scheduling.tags). Every read and change made for a client names
its owner. A change a client can see commits with a NOTIFY on
CHANGES_CHANNEL (payload: the generationId; leo_mesh.db.notify), a change
of a worker's room (a final state, a cancel) with one on QUEUE_CHANNEL,
and a final state commits with its webhook delivery, if the generation has
a webhook.

The PENDING cap rests on `owner_quotas`: one row per owner, counting its
PENDING generations. Nothing here writes that count. Statement triggers on
`generations` (migration 0007_owner_quotas) add each statement's net change
of PENDING rows per owner, whatever made it: a create's INSERT, a final
state, a claim that times a row out, an operator's UPDATE or DELETE. So the
count changes in the transaction of the change it counts, and is exact at
every commit. The triggers lock the counter rows they change in owner
order. A create batch locks its owners' rows the same way, first
(`_lock_quotas`), and holds them until it commits, which gives:

- no deadlock between creates and the triggers of other writes (one order);
- a count that cannot move under the batch: any other write that moves one
  of these owners' generations in or out of PENDING waits for the batch to
  commit, and the batch read the count after the writes before it
  committed. `rules.decide_creates` adds one per INSERT it decides, which is
  what the INSERT's trigger then adds to the row;
- `createdAt` taken under the lock, so an owner's generations are ordered
  as they commit and a page cursor never skips one.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from leo_mesh import rules, scheduling
from leo_mesh.coalesce import Outcome
from leo_mesh.db import webhooks
from leo_mesh.db.group_commit import TransactionBatcher
from leo_mesh.db.notify import notify
from leo_mesh.db.pool import Database
from leo_mesh.db.rows import COLUMNS, GenerationRow, generation_rows, generation_rows_with_extras, images_json
from leo_mesh.errors import GenerationAlreadyFinal, GenerationNotFound, PendingLimitReached, RequestIdReused
from leo_mesh.rules import Completion, Kind, Model, Progress, ProgressOutcome, Result, Status
from leo_mesh.scheduling import Priority
from leo_mesh.telemetry import generations as counted

# Compared with when no generation has the id, so that an unknown id costs
# the same as a wrong token.
_NO_TOKEN_HASH = bytes(32)


@dataclass(frozen=True)
class NewGeneration:
    owner: str
    prompt: str
    model: Model
    width: int
    height: int
    request_id: uuid.UUID | None = None
    webhook_url: str | None = None
    kind: Kind = Kind.IMAGE
    priority: Priority = Priority.NORMAL
    # Not what the client asked for: the create's W3C traceparent, the API
    # key's weight, and the generation's expected duration (its cost in the
    # queue's fair share).
    trace_parent: str | None = None
    weight: int = 1
    cost: float = 1.0

    def fingerprint(self) -> str:
        """A digest of what the client asked for, to recognise a repeat. The
        kind and the priority count only when they are not the defaults, so
        the fingerprints of generations made before they existed still match
        their repeats."""
        parts = [self.prompt, self.model.value, str(self.width), str(self.height), self.webhook_url or ""]
        if self.kind is not Kind.IMAGE:
            parts.append(self.kind.value)
        if self.priority is not Priority.NORMAL:
            parts.append(f"priority={self.priority.name}")
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


# What every final state sets: the generation leaves the queue and its worker.
FINAL_SETS = (
    'phase = NULL, "workerId" = NULL, "takenAt" = NULL, "completedAt" = now(), "updatedAt" = now(),'
    ' "nextAttemptAt" = NULL'
)


async def _queue_tags(conn: AsyncConnection, news: Sequence[NewGeneration]) -> list[float]:
    """The fair-share tags of new generations (scheduling.tags), their
    lanes' finishes moved past them. The caller holds the owners' quota
    rows, so no other create moves these lanes meanwhile."""
    if not news:
        return []
    lanes = {(new.owner, new.priority) for new in news}
    cursor = await conn.execute(
        "SELECT owner, priority, finish FROM queue_lanes"
        " WHERE (owner, priority) IN (SELECT * FROM unnest(%s::text[], %s::smallint[]))",
        ([owner for owner, _ in lanes], [int(priority) for _, priority in lanes]),
    )
    finishes = {(owner, Priority(priority)): finish for owner, priority, finish in await cursor.fetchall()}
    state = await conn.execute('SELECT "virtualTime" FROM queue_state')
    found = await state.fetchone()
    tags, moved = scheduling.tags(
        [scheduling.Arrival(new.owner, new.priority, new.weight, new.cost) for new in news],
        finishes,
        float(found[0]) if found else 0.0,
    )
    await conn.execute(
        "INSERT INTO queue_lanes (owner, priority, finish)"
        " SELECT * FROM unnest(%s::text[], %s::smallint[], %s::float8[])"
        " ON CONFLICT (owner, priority) DO UPDATE SET finish = EXCLUDED.finish",
        ([owner for owner, _ in moved], [int(priority) for _, priority in moved], list(moved.values())),
    )
    return tags


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def _rows(conn: AsyncConnection, sql: str, params: Sequence[object] = ()) -> list[GenerationRow]:
    async with conn.cursor(row_factory=generation_rows) as cursor:
        await cursor.execute(sql, params)
        return await cursor.fetchall()


async def _row(conn: AsyncConnection, sql: str, params: Sequence[object] = ()) -> GenerationRow | None:
    rows = await _rows(conn, sql, params)
    return rows[0] if rows else None


def _token_matches(stored_hash: bytes | None, token: str) -> bool:
    """Whether `token` is the one whose hash is stored, in constant time."""
    return hmac.compare_digest(stored_hash or _NO_TOKEN_HASH, token_hash(token))


async def _lock_quotas(conn: AsyncConnection, owners: Sequence[str]) -> dict[str, int]:
    """The owners' PENDING counts, their rows locked in owner order (as the triggers lock them)."""
    await conn.execute(
        "INSERT INTO owner_quotas (owner) SELECT unnest(%s::text[]) ORDER BY 1 ON CONFLICT DO NOTHING", (owners,)
    )
    cursor = await conn.execute(
        "SELECT owner, pending FROM owner_quotas WHERE owner = ANY(%s) ORDER BY owner FOR UPDATE", (owners,)
    )
    return dict(await cursor.fetchall())


async def _earlier_creates(
    conn: AsyncConnection, keys: Sequence[tuple[str, uuid.UUID]]
) -> dict[tuple[str, uuid.UUID], tuple[GenerationRow, str]]:
    """Generations made earlier with these (owner, request id)s, and the fingerprints of what they asked."""
    if not keys:
        return {}
    async with conn.cursor(row_factory=generation_rows_with_extras) as cursor:
        await cursor.execute(
            f'SELECT {COLUMNS}, "requestId", "requestFingerprint" FROM generations'
            ' WHERE (owner, "requestId") IN (SELECT * FROM unnest(%s::text[], %s::uuid[]))',
            ([owner for owner, _ in keys], [request_id for _, request_id in keys]),
        )
        found = await cursor.fetchall()
    earlier = {}
    for row, extra in found:
        assert row.owner is not None  # found by owner
        earlier[(row.owner, extra["requestId"])] = (row, extra["requestFingerprint"])
    return earlier


def _create_answers(
    asks: Sequence[rules.CreateAsk],
    decisions: Sequence[rules.Create],
    earlier: dict[tuple[str, uuid.UUID], GenerationRow],
    inserted: Sequence[GenerationRow],
) -> list[Outcome[tuple[GenerationRow, bool]]]:
    """Each create's answer, as decided: the generation it made, the one it
    repeats (made earlier, or by a create before it in the batch), or its refusal."""
    made = dict(earlier)
    new_rows = iter(inserted)
    answers: list[Outcome[tuple[GenerationRow, bool]]] = []
    for ask, decision in zip(asks, decisions, strict=True):
        if decision is rules.Create.INSERT:
            row = next(new_rows)
            if ask.key is not None:
                made[ask.key] = row
            answers.append((row, True))
        elif decision is rules.Create.REPEAT:
            assert ask.key is not None  # only a create with a request id repeats
            answers.append((made[ask.key], False))
        elif decision is rules.Create.REUSED:
            answers.append(RequestIdReused(ask.request_id))
        else:
            answers.append(PendingLimitReached(ask.cap))
    return answers


class GenerationStore:
    def __init__(
        self, db: Database, *, webhook_body: Callable[[GenerationRow], str], completion_deadline_s: float = 120.0
    ) -> None:
        """`webhook_body` makes the body of a final generation's webhook (the
        public wire format); `completion_deadline_s` counts from a
        generation's start on a worker (progress reports tell of that start)."""
        self._db = db
        self._webhook_body = webhook_body
        self._completion_deadline_s = completion_deadline_s
        self._creates = TransactionBatcher(self._create_batch, name="create")
        self._completions = TransactionBatcher(self._complete_batch, name="complete")
        self._progress = TransactionBatcher(self._progress_batch, name="progress")

    async def _finalised(self, conn: AsyncConnection, rows: Sequence[GenerationRow]) -> None:
        """What commits with final states: their webhooks, and the
        notifications (a final state leaves the queue, or frees a worker's room)."""
        await webhooks.enqueue(conn, [(row, self._webhook_body(row)) for row in rows if row.webhook_url])
        await notify(conn, [row.generation_id for row in rows], queue=bool(rows))

    # --- the public API ---

    async def create(self, new: NewGeneration, *, max_pending: int) -> tuple[GenerationRow, bool]:
        """Insert a PENDING generation, due for dispatch at once, unless
        rules.decide_creates refuses it or finds it a repeat; creates that
        arrive together commit together.

        Returns (generation, created). A repeated request id with the same
        parameters returns the original (created False), even under a race:
        an owner's creates hold the owner's quota row while they insert (see
        the module's docstring), and the unique index on (owner, requestId)
        backs it up.
        """
        return await self._creates((new, max_pending))

    async def _create_batch(
        self, items: Sequence[tuple[NewGeneration, int]]
    ) -> list[Outcome[tuple[GenerationRow, bool]]]:
        asks = [rules.CreateAsk(new.owner, new.request_id, new.fingerprint(), cap) for new, cap in items]
        keys = sorted({ask.key for ask in asks if ask.key is not None})
        async with self._db.transaction(pipelined=True) as conn:
            pending = await _lock_quotas(conn, sorted({ask.owner for ask in asks}))
            earlier = await _earlier_creates(conn, keys)
            decisions = rules.decide_creates(asks, {key: fp for key, (_, fp) in earlier.items()}, pending)
            news = [new for (new, _), decision in zip(items, decisions, strict=True) if decision is rules.Create.INSERT]
            inserted = await self._insert(conn, news, await _queue_tags(conn, news))
        counted.created(inserted)
        return _create_answers(asks, decisions, {key: row for key, (row, _) in earlier.items()}, inserted)

    @staticmethod
    async def _insert(
        conn: AsyncConnection, news: Sequence[NewGeneration], tags: Sequence[float]
    ) -> list[GenerationRow]:
        """One INSERT for all, in order, queued with their tags: createdAt grows along the list."""
        if not news:
            return []
        ids = [uuid.uuid4() for _ in news]
        rows = await _rows(
            conn,
            'INSERT INTO generations (id, "generationId", owner, prompt, "coreModel", "imageWidth", "imageHeight",'
            ' "requestId", "requestFingerprint", "webhookUrl", kind, status, "createdAt", "updatedAt", "nextAttemptAt",'
            ' "traceParent", phase, priority, "fairTag")'
            " SELECT gen_random_uuid(), t.gid, t.owner, t.prompt, t.model::core_models, t.width, t.height,"
            " t.request_id, t.fingerprint, t.webhook_url, t.kind::generation_kind, 'PENDING', clock_timestamp(),"
            " clock_timestamp(), now(), t.trace_parent, 'QUEUED', t.priority, t.tag"
            " FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::int[], %s::int[], %s::uuid[],"
            " %s::text[], %s::text[], %s::text[], %s::text[], %s::smallint[], %s::float8[]) WITH ORDINALITY"
            " AS t(gid, owner, prompt, model, width, height, request_id, fingerprint, webhook_url, kind, trace_parent,"
            " priority, tag, position)"
            f" ORDER BY t.position RETURNING {COLUMNS}",
            (
                ids,
                [new.owner for new in news],
                [new.prompt for new in news],
                [new.model.value for new in news],
                [new.width for new in news],
                [new.height for new in news],
                [new.request_id for new in news],
                [new.fingerprint() if new.request_id else None for new in news],
                [new.webhook_url for new in news],
                [new.kind.value for new in news],
                [new.trace_parent for new in news],
                [int(new.priority) for new in news],
                list(tags),
            ),
        )
        by_id = {row.generation_id: row for row in rows}
        return [by_id[generation_id] for generation_id in ids]

    async def get(self, generation_id: uuid.UUID, owner: str) -> GenerationRow | None:
        async with self._db.connection() as conn:
            return await _row(
                conn,
                f'SELECT {COLUMNS} FROM generations WHERE "generationId" = %s AND owner = %s',
                (generation_id, owner),
            )

    async def get_any(self, generation_ids: Sequence[uuid.UUID]) -> list[GenerationRow]:
        """These generations, whoever owns them (callers check the owner)."""
        async with self._db.connection() as conn:
            return await _rows(
                conn, f'SELECT {COLUMNS} FROM generations WHERE "generationId" = ANY(%s)', (list(generation_ids),)
            )

    async def page(
        self,
        owner: str,
        *,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None = None,
        status: Status | None = None,
    ) -> list[GenerationRow]:
        """The owner's generations, newest first, strictly after the keyset
        position `after` = (createdAt, id) of the previous page's last row."""
        where: list[str] = ["owner = %s"]
        params: list[object] = [owner]
        if status is not None:
            where.append("status = %s::generation_status")
            params.append(status.value)
        if after is not None:
            where.append('("createdAt", id) < (%s, %s)')
            params.extend(after)
        sql = (
            f'SELECT {COLUMNS} FROM generations WHERE {" AND ".join(where)} ORDER BY "createdAt" DESC, id DESC LIMIT %s'
        )
        async with self._db.connection() as conn:
            return await _rows(conn, sql, [*params, limit])

    async def cancel(self, generation_id: uuid.UUID, owner: str) -> tuple[GenerationRow, str | None]:
        """Cancel the owner's PENDING generation; returns it CANCELLED, and
        the address of the worker that held it, if one did (it must stop
        the job; a queued generation is simply never sent)."""
        async with self._db.transaction() as conn:
            async with conn.cursor(row_factory=generation_rows_with_extras) as cursor:
                await cursor.execute(
                    f'SELECT {COLUMNS}, (SELECT w.address FROM ai_workers w WHERE w.id = generations."workerId")'
                    ' AS address FROM generations WHERE "generationId" = %s AND owner = %s FOR UPDATE',
                    (generation_id, owner),
                )
                found = await cursor.fetchone()
            if found is None:
                raise GenerationNotFound(generation_id)
            row, extra = found
            if not rules.can_move(row.status, Status.CANCELLED):
                raise GenerationAlreadyFinal(generation_id, row.status.value)
            cancelled = await self._make_final(conn, row.id, Status.CANCELLED, Result())
        counted.finished([cancelled])
        return cancelled, extra["address"]

    async def _make_final(
        self, conn: AsyncConnection, row_id: uuid.UUID, status: Status, result: Result
    ) -> GenerationRow:
        row = await _row(
            conn,
            f'UPDATE generations SET status = %s::generation_status, images = %s, "failureReason" = %s, {FINAL_SETS}'
            f" WHERE id = %s RETURNING {COLUMNS}",
            (status.value, Jsonb(images_json(result.assets or ())), result.failure_reason, row_id),
        )
        assert row is not None  # the caller holds the row's lock
        await self._finalised(conn, [row])
        return row

    # --- the AI's callback ---

    async def complete(self, generation_id: uuid.UUID, token: str, result: Result) -> Completion:
        """Apply the AI's result, idempotently: one final state per generation
        (rules.decide_completion). Only the token of the latest dispatch is
        accepted, compared in constant time. Results that arrive together
        commit together."""
        return await self._completions((generation_id, token, result))

    async def _complete_batch(self, items: Sequence[tuple[uuid.UUID, str, Result]]) -> list[Outcome[Completion]]:
        ids = sorted({generation_id for generation_id, _, _ in items})
        finished: list[GenerationRow] = []
        async with self._db.transaction(pipelined=True) as conn:
            async with conn.cursor(row_factory=generation_rows_with_extras) as cursor:
                await cursor.execute(
                    f'SELECT {COLUMNS}, "callbackTokenHash" FROM generations WHERE "generationId" = ANY(%s)'
                    " ORDER BY id FOR UPDATE",
                    (ids,),
                )
                found = await cursor.fetchall()
            rows = {row.generation_id: row for row, _ in found}
            hashes = {row.generation_id: extra["callbackTokenHash"] for row, extra in found}
            decisions = rules.decide_completions(
                [
                    rules.Reported(generation_id, _token_matches(hashes.get(generation_id), token), result)
                    for generation_id, token, result in items
                ],
                {generation_id: (row.status, row.result) for generation_id, row in rows.items()},
            )
            applied = {
                generation_id: result
                for (generation_id, _, result), decision in zip(items, decisions, strict=True)
                if decision is Completion.APPLIED
            }
            if applied:
                finished = await _rows(
                    conn,
                    "UPDATE generations AS g SET status = t.final::generation_status, images = t.made,"
                    f' "failureReason" = t.why, {FINAL_SETS}'
                    " FROM unnest(%s::uuid[], %s::text[], %s::jsonb[], %s::text[]) AS t(gid, final, made, why)"
                    f' WHERE g."generationId" = t.gid RETURNING {COLUMNS}',
                    (
                        list(applied),
                        [result.status.value for result in applied.values()],
                        [Jsonb(images_json(result.assets or ())) for result in applied.values()],
                        [result.failure_reason for result in applied.values()],
                    ),
                )
                await self._finalised(conn, finished)
        counted.finished(finished)
        return list(decisions)

    # --- the AI's progress reports ---

    async def report_progress(self, generation_id: uuid.UUID, token: str, progress: Progress) -> ProgressOutcome:
        """Show where the AI's job stands (rules.decide_progress): only the
        latest dispatch's token counts, only a PENDING generation changes,
        and only forward. updatedAt stays: it dates the generation's own
        changes, not the AI's reports. Reports that arrive together commit
        together."""
        return await self._progress((generation_id, token, progress))

    async def _progress_batch(self, items: Sequence[tuple[uuid.UUID, str, Progress]]) -> list[Outcome[ProgressOutcome]]:
        ids = sorted({generation_id for generation_id, _, _ in items})
        async with self._db.transaction() as conn:
            async with conn.cursor(row_factory=dict_row) as cursor:
                await cursor.execute(
                    'SELECT "generationId", status::text, "callbackTokenHash", progress'
                    ' FROM generations WHERE "generationId" = ANY(%s) ORDER BY id FOR UPDATE',
                    (ids,),
                )
                found = {record["generationId"]: record for record in await cursor.fetchall()}
            hashes = {generation_id: record["callbackTokenHash"] for generation_id, record in found.items()}
            decisions = rules.decide_progress_reports(
                [
                    rules.Reported(generation_id, _token_matches(hashes.get(generation_id), token), reported)
                    for generation_id, token, reported in items
                ],
                {
                    generation_id: (Status(record["status"]), Progress(record["progress"]))
                    for generation_id, record in found.items()
                },
            )
            # Each generation's last applied report: the furthest.
            shown = {
                generation_id: reported
                for (generation_id, _, reported), decision in zip(items, decisions, strict=True)
                if decision is ProgressOutcome.APPLIED
            }
            if shown:
                # A percent tells that the worker runs the job: one it was
                # holding for a slot (or whose start was not acknowledged
                # yet) is RUNNING from now, its deadline counted from now.
                await conn.execute(
                    "UPDATE generations AS g SET progress = t.percent,"
                    " phase = CASE WHEN g.phase IN ('STARTING', 'HELD') THEN 'RUNNING' ELSE g.phase END,"
                    " \"startedAt\" = CASE WHEN g.phase IN ('STARTING', 'HELD') THEN now() ELSE g.\"startedAt\" END,"
                    " \"nextAttemptAt\" = CASE WHEN g.phase IN ('STARTING', 'HELD')"
                    ' THEN now() + make_interval(secs => %s) ELSE g."nextAttemptAt" END'
                    " FROM unnest(%s::uuid[], %s::int[]) AS t(gid, percent)"
                    ' WHERE g."generationId" = t.gid',
                    (self._completion_deadline_s, list(shown), [p.percent for p in shown.values()]),
                )
                await notify(conn, list(shown))
        return list(decisions)
