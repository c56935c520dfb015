"""The generation store on a real database: creates and completions that
arrive together commit together, each caller answered on its own; the
PENDING counter stays exact; an owner's creates wait for each other."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest

from leo_mesh.db.generations import GenerationStore, NewGeneration
from leo_mesh.db.pool import Database
from leo_mesh.db.queue import NotTaken, QueueStore, Round
from leo_mesh.errors import DatabaseUnavailable, PendingLimitReached, RequestIdReused
from leo_mesh.rules import Asset, Completion, Model, Result, Status
from tests import rows
from tests.inprocess import signed_webhook_body as webhook_body

DONE = Result(assets=(Asset("g/1.png", "image/png", 64, 64, byte_size=100),))


def new(owner: str = "alice", prompt: str = "p", request_id: uuid.UUID | None = None) -> NewGeneration:
    return NewGeneration(owner, prompt, Model.SDXL, 64, 64, request_id=request_id)


async def counters(db: Database) -> tuple[dict[str, int], dict[str, int]]:
    """The owners' PENDING counters, and the PENDING rows counted."""
    async with db.connection() as conn:
        kept = dict(await (await conn.execute("SELECT owner, pending FROM owner_quotas WHERE pending > 0")).fetchall())
        counted = dict(
            await (
                await conn.execute("SELECT owner, count(*) FROM generations WHERE status = 'PENDING' GROUP BY owner")
            ).fetchall()
        )
    return kept, counted


async def dispatch_round(db: Database, *, start_lease_s: float = 60, max_attempts: int = 5) -> Round:
    """A dispatch round into the pool's one ample worker."""
    await asyncio.to_thread(rows.ensure_worker, db.url)
    queue = QueueStore(db, webhook_body=webhook_body)
    return await queue.round(
        limit=1000, max_running_per_owner=1000, max_attempts=max_attempts, start_lease_s=start_lease_s, worker_lease_s=3
    )


async def test_concurrent_creates_fill_each_owner_s_cap_exactly(store, db):
    calls = [store.create(new(owner), max_pending=5) for owner in ("alice", "bob") for _ in range(12)]
    got = await asyncio.gather(*calls, return_exceptions=True)
    for owner_results in (got[:12], got[12:]):
        assert sum(isinstance(r, tuple) for r in owner_results) == 5
        assert all(isinstance(r, PendingLimitReached) for r in owner_results if not isinstance(r, tuple))
    kept, counted = await counters(db)
    assert kept == counted == {"alice": 5, "bob": 5}


async def test_repeats_and_reuses_of_a_request_id_in_one_batch(store):
    request_id, other_id = uuid.uuid4(), uuid.uuid4()
    # One batch, as group commit makes of creates that arrive together.
    got = await store._create_batch(
        [
            (new(request_id=request_id), 100),
            (new(request_id=request_id), 100),
            (new(prompt="other", request_id=request_id), 100),
            (new(request_id=other_id), 100),
        ]
    )
    (first, created), (again, created_again) = got[0], got[1]
    assert created and not created_again and again.generation_id == first.generation_id
    assert isinstance(got[2], RequestIdReused)
    assert got[3][1] and got[3][0].generation_id != first.generation_id
    # Later, outside the batch: still the original.
    later, created_later = await store.create(new(request_id=request_id), max_pending=100)
    assert later.generation_id == first.generation_id and not created_later


async def test_concurrent_repeats_of_a_request_make_one_generation(store):
    request_id = uuid.uuid4()
    got = await asyncio.gather(*(store.create(new(request_id=request_id), max_pending=100) for _ in range(10)))
    assert len({row.generation_id for row, _ in got}) == 1
    assert sorted(created for _, created in got) == [False] * 9 + [True]


async def test_a_repeat_is_answered_even_at_the_cap(store):
    request_id = uuid.uuid4()
    original, _ = await store.create(new(request_id=request_id), max_pending=1)
    assert (await store.create(new(request_id=request_id), max_pending=1))[0] == original
    with pytest.raises(PendingLimitReached):
        await store.create(new(), max_pending=1)


async def test_completions_that_arrive_together_are_each_decided_alone(store, db):
    rows = [(await store.create(new(prompt=f"p{i}"), max_pending=100))[0] for i in range(5)]
    tokens = {start.row.generation_id: start.callback_token for start in (await dispatch_round(db)).starts}
    a, b, c, d, e = (row.generation_id for row in rows)
    await store.complete(d, tokens[d], DONE)
    failed = Result(failure_reason="no")
    # Both batch slots wait on a row the test holds, so the calls below
    # gather into one batch, decided in their order.
    async with db.transaction() as holder:
        await holder.execute('SELECT 1 FROM generations WHERE "generationId" = %s FOR UPDATE', (e,))
        blocked = [asyncio.create_task(store.complete(e, tokens[e], DONE)) for _ in range(2)]
        await asyncio.sleep(0.1)
        together = asyncio.gather(
            store.complete(a, tokens[a], DONE),  # applied
            store.complete(a, tokens[a], DONE),  # the same again: duplicate
            store.complete(a, tokens[a], failed),  # another result: conflict
            store.complete(b, "wrong", DONE),  # bad token
            store.complete(uuid.uuid4(), "any", DONE),  # unknown: looks like a bad token
            store.complete(c, tokens[c], failed),  # applied
            store.complete(d, tokens[d], DONE),  # done before: duplicate
        )
        await asyncio.sleep(0.1)
    assert sorted(await asyncio.gather(*blocked), key=str) == [Completion.APPLIED, Completion.DUPLICATE]
    got = await together
    assert got == [
        Completion.APPLIED,
        Completion.DUPLICATE,
        Completion.CONFLICT,
        Completion.BAD_TOKEN,
        Completion.BAD_TOKEN,
        Completion.APPLIED,
        Completion.DUPLICATE,
    ]
    assert (await store.get(a, "alice")).status is Status.COMPLETE
    assert (await store.get(b, "alice")).status is Status.PENDING
    assert (await store.get(c, "alice")).failure_reason == "no"
    kept, counted = await counters(db)
    assert kept == counted == {"alice": 1}  # b


async def test_the_pending_counter_follows_every_way_out_of_pending(store, db):
    rng = random.Random(7)
    owners = ["o1", "o2", "o3"]
    for _ in range(60):
        await store.create(new(rng.choice(owners)), max_pending=1000)
    starts = (await dispatch_round(db, max_attempts=2)).starts
    for start in starts[:15]:
        await store.complete(
            start.row.generation_id, start.callback_token, DONE if rng.random() < 0.5 else Result(failure_reason="x")
        )
    for start in starts[15:25]:
        await store.cancel(start.row.generation_id, start.row.owner)
    queue = QueueStore(db, webhook_body=webhook_body)
    await queue.record_starts(
        [NotTaken(start, "UNAVAILABLE: later", counts=False) for start in starts[35:40]]
        + [NotTaken(start, "INVALID_ARGUMENT: no", reason="rejected") for start in starts[25:35]],
        completion_deadline_s=60,
    )
    # starts[35:40] went back without using their attempt; starts[40:] are
    # put back by hand as a lost worker's would be. Two more rounds use up
    # the second attempt of starts[40:] only; starts[35:40] run and complete.
    for start in starts[40:]:
        await asyncio.to_thread(rows.requeue, db.url, str(start.row.generation_id))
    await dispatch_round(db, max_attempts=2)
    for start in starts[35:]:
        await asyncio.to_thread(rows.requeue, db.url, str(start.row.generation_id))
    last = await dispatch_round(db, max_attempts=2)
    assert {g.generation_id for g in last.failed} == {s.row.generation_id for s in starts[40:]}
    assert {s.row.generation_id for s in last.starts} == {s.row.generation_id for s in starts[35:40]}
    for start in last.starts:
        await store.complete(start.row.generation_id, start.callback_token, DONE)
    kept, counted = await counters(db)
    assert kept == counted == {}


async def test_an_owner_s_creates_wait_for_each_other_and_no_one_else(store, db):
    await store.create(new("alice"), max_pending=100)
    async with db.transaction() as conn:
        await conn.execute("SELECT 1 FROM owner_quotas WHERE owner = 'alice' FOR UPDATE")
        alice = asyncio.create_task(store.create(new("alice"), max_pending=100))
        bob, _ = await asyncio.wait_for(store.create(new("bob"), max_pending=100), timeout=10)
        await asyncio.sleep(0.2)
        assert not alice.done()  # waits for the lock holder, as a concurrent create of alice's would
        released = await (await conn.execute("SELECT clock_timestamp()")).fetchone()
    row, _ = await alice
    assert row.created_at >= released[0]  # createdAt is taken after the lock: as committed
    assert bob.owner == "bob"


async def test_a_database_outage_reaches_every_caller_of_a_batch(postgres):
    unreachable = postgres.url("postgres").replace(str(postgres.port), "9")
    async with Database(unreachable, name="test", max_size=2, checkout_timeout_s=0.5) as db:
        store = GenerationStore(db, webhook_body=webhook_body)
        got = await asyncio.gather(*(store.create(new(), max_pending=5) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, DatabaseUnavailable) for r in got), got
