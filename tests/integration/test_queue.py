"""The mesh's queue on a real database (leo_mesh.db.queue): what a dispatch
round hands out to which worker, in what order, and what becomes of a
generation a worker took, refused, lost or never finished. The workers are
rows (tests.rows.add_worker); the sends' outcomes are recorded as the
dispatcher would record them."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import timedelta

import pytest

from leo.generation.v1 import generation_pb2
from leo_mesh import convert, rules
from leo_mesh.db.generations import GenerationStore, NewGeneration
from leo_mesh.db.pool import Database
from leo_mesh.db.queue import DEADLINE_ERROR, NotTaken, QueueStore, Round, Start, Taken
from leo_mesh.db.rows import GenerationRow
from leo_mesh.rules import Asset, Completion, Kind, Model, Progress, Result
from leo_mesh.scheduling import CLASS_WEIGHTS, Priority
from tests import rows
from tests.inprocess import LINKS, signed_webhook_body

DEADLINE_S = 60.0
DONE = Result(assets=(Asset("g/1.png", "image/png", 64, 64, byte_size=100),))
HOOK = "https://hooks.example.test/leo"


@pytest.fixture
def queue(db) -> QueueStore:
    return QueueStore(db, webhook_body=signed_webhook_body)


async def create(
    store: GenerationStore, owner: str = "alice", n: int = 1, *, model: Model = Model.SDXL, **fields
) -> list[GenerationRow]:
    """`n` generations of `owner`, one create after the other (queued in that order)."""
    made = []
    for i in range(n):
        new = NewGeneration(owner, f"{owner} {i}", model, 64, 64, **fields)
        made.append((await store.create(new, max_pending=1000))[0])
    return made


async def hand_out(
    queue: QueueStore, *, limit: int = 100, cap: int = 100, max_attempts: int = 5, start_lease_s: float = 60
) -> Round:
    return await queue.round(
        limit=limit, max_running_per_owner=cap, max_attempts=max_attempts, start_lease_s=start_lease_s, worker_lease_s=3
    )


async def worker(db: Database, **fields) -> uuid.UUID:
    """A worker in the pool (tests.rows.add_worker's fields), at an address of its own."""
    fields.setdefault("address", f"worker-{uuid.uuid4().hex[:8]}:50051")
    return await asyncio.to_thread(rows.add_worker, db.url, **fields)


async def placement(db: Database, generation_id: uuid.UUID) -> rows.Placement:
    return await asyncio.to_thread(rows.placement, db.url, generation_id)


def ids(starts: list[Start]) -> set[uuid.UUID]:
    return {start.row.generation_id for start in starts}


def per_worker(starts: list[Start]) -> Counter:
    return Counter(start.worker_id for start in starts)


async def taken(queue: QueueStore, *starts: Start, running: bool = True, taken_at: int = 1) -> None:
    await queue.record_starts([Taken(s, running, taken_at) for s in starts], completion_deadline_s=DEADLINE_S)


async def until_waiting_or_done(db: Database, tasks: list[asyncio.Future]) -> None:
    while await asyncio.to_thread(rows.waiting_for_locks, db.url) + sum(t.done() for t in tasks) < len(tasks):
        await asyncio.sleep(0.01)


# --- room ---


async def test_a_round_fills_each_worker_s_room_slots_plus_prefetch_less_what_it_holds(store, queue, db):
    big = await worker(db, slots=2, prefetch=1)
    (first,) = await create(store, "early")
    assert per_worker((await hand_out(queue)).starts) == {big: 1}  # big now holds one
    small = await worker(db, slots=1, prefetch=0)
    await create(store, "alice", 10)
    got = await hand_out(queue)
    assert per_worker(got.starts) == {big: 2, small: 1}
    assert first.generation_id not in ids(got.starts)
    assert await asyncio.to_thread(rows.holding, db.url) == {big: 3, small: 1}
    # Full: nothing more until room frees.
    assert (await hand_out(queue)).starts == []
    (done,) = [s for s in got.starts if s.worker_id == small]
    assert await store.complete(done.row.generation_id, done.callback_token, DONE) is Completion.APPLIED
    assert per_worker((await hand_out(queue)).starts) == {small: 1}


async def test_a_round_hands_out_no_more_than_its_limit(store, queue, db):
    await worker(db, slots=10)
    await create(store, "alice", 5)
    got = await hand_out(queue, limit=2)
    assert len(got.starts) == 2 and got.full
    got = await hand_out(queue, limit=10)
    assert len(got.starts) == 3 and not got.full


async def test_concurrent_rounds_never_over_assign_a_worker_nor_hand_a_generation_out_twice(store, db):
    rooms = {await worker(db, slots=2, prefetch=1): 3, await worker(db, slots=1): 1, await worker(db, slots=2): 2}
    # More than a round reads ahead (four times the room, and some): rounds
    # that overlapped would each find generations the others did not lock.
    news = [NewGeneration(f"owner {i % 4}", "p", Model.SDXL, 64, 64) for i in range(120)]
    await asyncio.gather(*(store.create(new, max_pending=1000) for new in news))
    async with (
        Database(db.url, name="replica-1", max_size=2) as one,
        Database(db.url, name="replica-2", max_size=2) as two,
    ):
        replicas = [QueueStore(d, webhook_body=signed_webhook_body) for d in (one, two, one, two)]
        # All rounds start before any ends: each waits for the round lock, or
        # (were there none) for the virtual time, written after the room is
        # counted and the candidates are chosen.
        with rows.virtual_time_locked(db.url):
            rounds = [asyncio.ensure_future(hand_out(replica)) for replica in replicas]
            await asyncio.wait_for(until_waiting_or_done(db, rounds), timeout=10)
        got = await asyncio.gather(*rounds)
    starts = [start for one_round in got for start in one_round.starts]
    assert len(starts) == len(ids(starts)) == sum(rooms.values())
    assert per_worker(starts) == rooms
    assert await asyncio.to_thread(rows.holding, db.url) == rooms


# --- generations on workers that are gone, silent or late ---


async def test_a_gone_worker_s_generations_go_back_to_the_queue_with_the_attempt_counted(store, queue, db):
    gone = await worker(db, slots=2)
    made = await create(store, "alice", 2)
    got = await hand_out(queue)
    await taken(queue, got.starts[0])  # one running, one not acknowledged yet
    await asyncio.to_thread(rows.end_lease, db.url, gone)
    # Every lease ended: no heartbeat arrives from anyone (the callback
    # server may be what failed), so no worker counts as gone.
    assert (await hand_out(queue)).starts == []
    assert await asyncio.to_thread(rows.worker, db.url, gone) is not None
    assert {(await placement(db, row.generation_id)).worker_id for row in made} == {gone}
    # A worker that keeps its lease (in the pool for an hour) sees it silent: gone.
    other = await worker(db, slots=2)
    again = await hand_out(queue)
    assert await asyncio.to_thread(rows.worker, db.url, gone) is None
    assert ids(again.starts) == {row.generation_id for row in made}
    assert per_worker(again.starts) == {other: 2}
    assert {start.row.attempts for start in again.starts} == {2}


async def test_a_job_that_takes_every_worker_down_ends_failed_after_the_last_attempt(store, queue, db):
    (poison,) = await create(store, webhook_url=HOOK)
    for attempt in (1, 2):
        # A new worker joins; the one before it is gone (this one's lease witnesses it).
        victim = await worker(db)
        (start,) = (await hand_out(queue, max_attempts=2)).starts
        assert (start.worker_id, start.row.attempts) == (victim, attempt)
        await asyncio.to_thread(rows.end_lease, db.url, victim)
    await worker(db)
    last = await hand_out(queue, max_attempts=2)
    assert last.starts == [] and [row.generation_id for row in last.failed] == [poison.generation_id]
    ended = await placement(db, poison.generation_id)
    assert (ended.status, ended.phase, ended.worker_id, ended.attempts) == ("FAILED", None, None, 2)
    assert ended.failure_reason == rules.timed_out_reason(2)
    assert await asyncio.to_thread(rows.delivery, db.url, str(poison.generation_id)) is not None


async def test_an_unacknowledged_start_is_sent_again_to_the_same_worker_with_a_new_token(store, queue, db):
    await worker(db, slots=1)
    await worker(db, slots=5)
    (row,) = await create(store)
    (first,) = (await hand_out(queue)).starts
    assert (await hand_out(queue)).starts == []  # its start lease has not ended
    await asyncio.to_thread(rows.make_due, db.url, row.generation_id)
    (again,) = (await hand_out(queue)).starts
    assert again.again and again.worker_id == first.worker_id and again.address == first.address
    assert again.callback_token != first.callback_token
    still = await placement(db, row.generation_id)
    # Each send is an attempt: a worker that never answers does not keep it forever.
    assert (still.phase, still.attempts, still.next_attempt_at > still.read_at) == ("STARTING", 2, True)
    await taken(queue, again)
    assert (await placement(db, row.generation_id)).phase == "RUNNING"
    assert await store.complete(row.generation_id, first.callback_token, DONE) is Completion.BAD_TOKEN
    assert await store.complete(row.generation_id, again.callback_token, DONE) is Completion.APPLIED


async def test_a_generation_past_its_deadline_is_dropped_from_its_worker_and_queued_again(store, queue, db):
    await worker(db, slots=4)
    (row,) = await create(store)
    (start,) = (await hand_out(queue)).starts
    await taken(queue, start)
    await asyncio.to_thread(rows.make_due, db.url, row.generation_id)
    late = await hand_out(queue)
    assert late.drops == {start.address: [str(row.generation_id)]}
    # Not sent in the round that drops the late job: on the same worker, the
    # new start could arrive first and be dropped with it.
    assert row.generation_id not in ids(late.starts)
    back = await placement(db, row.generation_id)
    assert (back.status, back.phase, back.worker_id, back.started_at, back.attempts) == (
        "PENDING",
        "QUEUED",
        None,
        None,
        1,
    )
    assert back.last_error == DEADLINE_ERROR
    (again,) = (await hand_out(queue)).starts  # the next round sends it
    assert again.row.generation_id == row.generation_id and again.row.attempts == 2 and not again.again


async def test_a_generation_past_its_deadline_on_its_last_attempt_ends_failed(store, queue, db):
    await worker(db, slots=4)
    (row,) = await create(store, webhook_url=HOOK)
    (start,) = (await hand_out(queue, max_attempts=1)).starts
    await taken(queue, start)
    await asyncio.to_thread(rows.make_due, db.url, row.generation_id)
    late = await hand_out(queue, max_attempts=1)
    assert late.drops == {start.address: [str(row.generation_id)]}
    assert [r.generation_id for r in late.failed] == [row.generation_id] and late.starts == []
    ended = await placement(db, row.generation_id)
    assert (ended.status, ended.phase, ended.worker_id, ended.failure_reason) == (
        "FAILED",
        None,
        None,
        rules.timed_out_reason(1),
    )
    assert await asyncio.to_thread(rows.delivery, db.url, str(row.generation_id)) is not None


# --- what the worker answered ---


async def test_time_in_the_queue_does_not_count_against_the_completion_deadline(store, queue, db):
    await worker(db, slots=1)
    (row,) = await create(store)
    await asyncio.to_thread(rows.queued_since, db.url, row.generation_id, 3600)  # an hour in the queue
    (start,) = (await hand_out(queue)).starts
    await taken(queue, start, taken_at=3)
    running = await placement(db, row.generation_id)
    assert (running.phase, running.taken_at) == ("RUNNING", 3)
    assert running.started_at >= running.assigned_at
    assert running.next_attempt_at - running.started_at == timedelta(seconds=DEADLINE_S)
    assert (await store.get(row.generation_id, "alice")).started_at == running.started_at
    late = await hand_out(queue)
    assert late.drops == {} and late.failed == []
    assert (await placement(db, row.generation_id)).phase == "RUNNING"


async def test_a_job_held_by_its_worker_waits_there_and_clients_see_it_starting(store, queue, db):
    await worker(db, slots=1, prefetch=1)
    (row,) = await create(store)
    (start,) = (await hand_out(queue)).starts
    await taken(queue, start, running=False, taken_at=4)
    held = await placement(db, row.generation_id)
    assert (held.phase, held.taken_at, held.started_at, held.next_attempt_at) == ("HELD", 4, None, None)
    shown = convert.to_proto(await store.get(row.generation_id, "alice"), LINKS)
    assert shown.phase == generation_pb2.PHASE_STARTING and not shown.HasField("start_time")
    assert (await hand_out(queue)).starts == []  # held: never sent again, whatever the time


async def test_a_refusal_for_lack_of_room_queues_it_again_without_using_the_attempt(store, queue, db):
    await worker(db, slots=1)
    (row,) = await create(store)
    (start,) = (await hand_out(queue)).starts
    await queue.record_starts(
        [NotTaken(start, "RESOURCE_EXHAUSTED: full", counts=False)], completion_deadline_s=DEADLINE_S
    )
    back = await placement(db, row.generation_id)
    assert (back.phase, back.worker_id, back.attempts, back.last_error) == (
        "QUEUED",
        None,
        0,
        "RESOURCE_EXHAUSTED: full",
    )
    (again,) = (await hand_out(queue)).starts
    assert again.row.attempts == 1


async def test_a_failed_start_is_retried_after_its_delay_with_the_attempt_counted(store, queue, db):
    await worker(db, slots=1)
    (row,) = await create(store)
    (start,) = (await hand_out(queue)).starts
    await queue.record_starts([NotTaken(start, "UNAVAILABLE: down", after_s=30)], completion_deadline_s=DEADLINE_S)
    back = await placement(db, row.generation_id)
    assert (back.phase, back.worker_id, back.attempts) == ("QUEUED", None, 1)
    assert timedelta(seconds=29) < back.next_attempt_at - back.read_at <= timedelta(seconds=30)
    assert (await hand_out(queue)).starts == []  # not before its delay
    await asyncio.to_thread(rows.make_due, db.url, row.generation_id)
    (again,) = (await hand_out(queue)).starts
    assert again.row.attempts == 2


async def test_a_start_given_up_ends_failed_with_its_webhook_enqueued(store, queue, db):
    await worker(db, slots=2)
    (hooked,) = await create(store, webhook_url=HOOK)
    (plain,) = await create(store, "bob")
    starts = {s.row.generation_id: s for s in (await hand_out(queue)).starts}
    failed = await queue.record_starts(
        [
            NotTaken(starts[g.generation_id], "INVALID_ARGUMENT: no", reason=rules.rejected_reason("no"))
            for g in (hooked, plain)
        ],
        completion_deadline_s=DEADLINE_S,
    )
    assert {r.generation_id for r in failed} == {hooked.generation_id, plain.generation_id}
    for row in (hooked, plain):
        ended = await placement(db, row.generation_id)
        assert (ended.status, ended.phase, ended.worker_id, ended.failure_reason, ended.last_error) == (
            "FAILED",
            None,
            None,
            rules.rejected_reason("no"),
            "INVALID_ARGUMENT: no",
        )
    assert await asyncio.to_thread(rows.delivery, db.url, str(hooked.generation_id)) is not None
    assert await asyncio.to_thread(rows.delivery, db.url, str(plain.generation_id)) is None


async def test_an_outcome_that_comes_after_the_generation_moved_on_changes_nothing(store, queue, db):
    await worker(db, slots=4)
    cancelled, started, again = await create(store, "alice", 3)
    starts = {s.row.generation_id: s for s in (await hand_out(queue)).starts}
    await store.cancel(cancelled.generation_id, "alice")
    # Its first progress report says it runs (the answer to its start is late).
    token = starts[started.generation_id].callback_token
    await store.report_progress(started.generation_id, token, Progress(percent=5))
    # Queued again and handed out again: the first dispatch's outcome is stale.
    await asyncio.to_thread(rows.requeue, db.url, str(again.generation_id))
    (newer,) = (await hand_out(queue)).starts
    before = {g.generation_id: await placement(db, g.generation_id) for g in (cancelled, started, again)}
    for outcomes in (
        [Taken(s, False, 9) for s in starts.values()],
        [NotTaken(s, "UNAVAILABLE: late", after_s=1) for s in starts.values()],
        [NotTaken(s, "INVALID_ARGUMENT: late", reason="rejected late") for s in starts.values()],
    ):
        assert await queue.record_starts(outcomes, completion_deadline_s=DEADLINE_S) == []
        after = {g.generation_id: await placement(db, g.generation_id) for g in (cancelled, started, again)}
        assert {g: (p.status, p.phase, p.attempts, p.taken_at) for g, p in after.items()} == {
            g: (p.status, p.phase, p.attempts, p.taken_at) for g, p in before.items()
        }
    assert before[started.generation_id].phase == "RUNNING" and newer.row.attempts == 2


# --- who goes first ---


async def test_an_owner_never_has_more_than_the_cap_on_workers(store, queue, db):
    await worker(db, slots=100)
    alice = await create(store, "alice", 10)
    (bob,) = await create(store, "bob")
    got = await hand_out(queue, cap=3)
    assert Counter(s.row.owner for s in got.starts) == {"alice": 3, "bob": 1}
    assert bob.generation_id in ids(got.starts)
    assert (await hand_out(queue, cap=3)).starts == []
    done = next(s for s in got.starts if s.row.owner == "alice")
    await store.complete(done.row.generation_id, done.callback_token, DONE)
    (next_one,) = (await hand_out(queue, cap=3)).starts
    assert next_one.row.generation_id in {row.generation_id for row in alice[3:]}


async def test_an_owner_at_the_cap_does_not_hold_back_the_generations_behind_its_own(store, queue, db):
    await worker(db, slots=1)
    await create(store, "alice")
    await hand_out(queue, cap=1)  # alice is at her cap
    # Bob's earlier generations moved his lane on: his next one queues
    # behind all of alice's backlog (her key weighs 100: her tags are close).
    for row in await create(store, "bob", 2):
        await store.cancel(row.generation_id, "bob")
    await create(store, "alice", 40, weight=100)
    (bob,) = await create(store, "bob")
    await worker(db, slots=1)
    got = await hand_out(queue, cap=1)
    assert ids(got.starts) == {bob.generation_id}


async def test_a_worker_gets_only_the_models_and_kinds_it_serves(store, queue, db):
    images = await worker(db, slots=10, models="{SD,SDXL}", kinds="{IMAGE}")
    sd = await worker(db, slots=10, models="{SD}", kinds="{IMAGE,VIDEO}")
    sdxl_video = await create(store, "alice", 3, model=Model.SDXL, kind=Kind.VIDEO)
    sdxl_image = await create(store, "alice", 3, model=Model.SDXL, kind=Kind.IMAGE)
    sd_video = await create(store, "alice", 3, model=Model.SD, kind=Kind.VIDEO)
    got = await hand_out(queue)
    where = {s.row.generation_id: s.worker_id for s in got.starts}
    assert {g.generation_id: where.get(g.generation_id) for g in sdxl_video + sdxl_image + sd_video} == {
        **{g.generation_id: None for g in sdxl_video},  # no worker makes SDXL videos
        **{g.generation_id: images for g in sdxl_image},
        **{g.generation_id: sd for g in sd_video},
    }


async def test_generations_no_worker_can_take_do_not_hold_back_those_behind_them(store, queue, db):
    await worker(db, slots=1, models="{SD}", kinds="{IMAGE}")
    await worker(db, slots=1, models="{SDXL}", kinds="{VIDEO}")
    # One lane: the last two queue behind thirty SD videos, which no worker makes.
    await create(store, "alice", 30, model=Model.SD, kind=Kind.VIDEO)
    (sd_image,) = await create(store, "alice", model=Model.SD, kind=Kind.IMAGE)
    (sdxl_video,) = await create(store, "alice", model=Model.SDXL, kind=Kind.VIDEO)
    got = await hand_out(queue)
    assert ids(got.starts) == {sd_image.generation_id, sdxl_video.generation_id}


async def test_a_light_owner_s_one_generation_goes_before_a_heavy_owner_s_backlog(store, queue, db):
    await worker(db, slots=1, prefetch=1)
    alice = await create(store, "alice", 50)
    (bob,) = await create(store, "bob")
    got = await hand_out(queue)
    assert ids(got.starts) == {alice[0].generation_id, bob.generation_id}


async def test_high_goes_before_normal_when_both_are_due(store, queue, db):
    await worker(db, slots=1)
    await create(store, "alice", 5)
    (high,) = await create(store, "alice", priority=Priority.HIGH)
    assert ids((await hand_out(queue)).starts) == {high.generation_id}


async def test_low_keeps_its_share_under_a_steady_stream_of_high(store, queue, db):
    slots = 8
    await worker(db, slots=slots)
    low = {row.generation_id for row in await create(store, "bob", 4, priority=Priority.LOW)}
    handed_out: list[uuid.UUID] = []
    for _ in range(5):
        await create(store, "alice", slots, priority=Priority.HIGH)  # always more HIGH than room
        got = await hand_out(queue)
        assert len(got.starts) == slots
        handed_out += [s.row.generation_id for s in got.starts]
        for start in got.starts:
            await store.complete(start.row.generation_id, start.callback_token, DONE)
    share = CLASS_WEIGHTS[Priority.LOW] / (CLASS_WEIGHTS[Priority.LOW] + CLASS_WEIGHTS[Priority.HIGH])
    assert len(low & set(handed_out)) >= int(len(handed_out) * share) >= 2


async def test_the_virtual_time_only_moves_forward(store, queue, db):
    await worker(db, slots=10)
    seen = [await asyncio.to_thread(rows.virtual_time, db.url)]
    alice = await create(store, "alice", 4)
    for _ in range(3):
        await hand_out(queue, limit=1)
        seen.append(await asyncio.to_thread(rows.virtual_time, db.url))
    assert seen == sorted(seen) and seen[-1] > seen[0]
    # A generation handed out again after later ones (its tag is behind the
    # virtual time) does not move it back.
    first = alice[0].generation_id
    await asyncio.to_thread(rows.requeue, db.url, str(first))
    assert ids((await hand_out(queue, limit=1)).starts) == {first}
    assert await asyncio.to_thread(rows.virtual_time, db.url) == seen[-1]


# --- the queue as clients see it ---


async def test_a_snapshot_shows_the_queue_the_live_workers_and_what_they_hold(store, queue, db):
    live = await worker(db, slots=1, models="{SD}", kinds="{IMAGE}")
    draining = await worker(db, slots=3)
    await asyncio.to_thread(rows.set_draining, db.url, draining)
    gone = await worker(db, slots=5, lease_s=-1)
    on_worker, *waiting = await create(store, "alice", 3, model=Model.SD)
    await hand_out(queue)
    snapshot = await queue.snapshot()
    assert {w.row_id for w in snapshot.waiting} == {g.generation_id for g in waiting}
    assert snapshot.workers == {live: (1, ["SD"], ["IMAGE"])}
    assert [(worker_id, model, kind) for worker_id, model, kind, _ in snapshot.held] == [(live, Model.SD, Kind.IMAGE)]
    assert gone not in snapshot.workers and on_worker.generation_id not in {w.row_id for w in snapshot.waiting}


async def test_recent_durations_are_each_model_and_kind_s_median_from_start_to_result(store, queue, db):
    await worker(db, slots=10)
    images = await create(store, "alice", 5)
    videos = await create(store, "alice", 2, model=Model.SD, kind=Kind.VIDEO)
    starts = {s.row.generation_id: s for s in (await hand_out(queue)).starts}
    for row in images[:4] + videos:
        start = starts[row.generation_id]
        await store.complete(row.generation_id, start.callback_token, DONE)
    failed = images[4]
    await store.complete(failed.generation_id, starts[failed.generation_id].callback_token, Result(failure_reason="x"))
    runs = [(images[0], 2, 0), (images[1], 4, 0), (images[2], 9, 0), (videos[0], 10, 0), (videos[1], 20, 0)]
    runs += [(images[3], 100, 7200), (failed, 50, 0)]  # too long ago; not a result
    for row, seconds, ago in runs:
        await asyncio.to_thread(rows.ran, db.url, row.generation_id, seconds, ended_ago_s=ago)
    assert await queue.recent_durations(900) == {
        (Model.SDXL, Kind.IMAGE): pytest.approx(4),
        (Model.SD, Kind.VIDEO): pytest.approx(15),
    }
