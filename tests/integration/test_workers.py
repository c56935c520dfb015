"""The AI workers' heartbeats on a real database (leo_mesh.db.workers): a
heartbeat joins the pool and keeps the worker's lease; what the worker
reports of its jobs is reconciled with what the mesh assigned to it; the
dispatchers hear when the pool's room changed. Validation through the
callback_server's Heartbeat (in process)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

import grpc
import psycopg
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from leo.ai.v1 import ai_pb2
from leo.callback.v1 import callback_pb2, callback_pb2_grpc
from leo_mesh import convert
from leo_mesh.db.generations import GenerationStore, NewGeneration
from leo_mesh.db.notify import QUEUE_CHANNEL
from leo_mesh.db.pool import Database
from leo_mesh.db.queue import QueueStore, Start, Taken
from leo_mesh.db.workers import LEFT_ERROR, LOST_ERROR, Heartbeat, WorkerStore
from leo_mesh.rules import Asset, Kind, Model, Result
from leo_mesh.scheduling import Reported
from leo_mesh.settings import QueueSettings
from tests import rows
from tests.inprocess import LINKS, callback_server, channel_to, signed_webhook_body
from tests.mesh_fixtures import migrated_database

LEASE_S = 3.0
DEADLINE_S = 60.0
DONE = Result(assets=(Asset("g/1.png", "image/png", 64, 64, byte_size=100),))
# The database keeps milliseconds.
MS = timedelta(milliseconds=1)


@pytest.fixture(scope="module")
async def callback_app(postgres):
    """One callback_server for the module's tests of the Heartbeat call (each
    with a worker of its own), its stub and its database's URL."""
    with migrated_database(postgres) as database_url:
        async with callback_server(database_url) as app, channel_to(app) as channel:
            yield callback_pb2_grpc.CallbackServiceStub(channel), database_url


@pytest.fixture
def workers(db) -> WorkerStore:
    return WorkerStore(db)


@pytest.fixture
def queue(db) -> QueueStore:
    return QueueStore(db, webhook_body=signed_webhook_body)


def beat(
    worker_id: uuid.UUID,
    number: int,
    jobs: dict[uuid.UUID, Reported] | None = None,
    *,
    slots: int = 4,
    prefetch: int = 1,
    models: frozenset[Model] = frozenset(Model),
    kinds: frozenset[Kind] = frozenset(Kind),
    draining: bool = False,
    leaving: bool = False,
) -> Heartbeat:
    return Heartbeat(
        worker_id=worker_id,
        address=f"worker-{str(worker_id)[:8]}:50051",
        slots=slots,
        prefetch=prefetch,
        models=models,
        kinds=kinds,
        number=number,
        draining=draining,
        leaving=leaving,
        jobs=jobs or {},
    )


async def send(workers: WorkerStore, heartbeat: Heartbeat) -> set[uuid.UUID]:
    """The heartbeat recorded; the jobs its answer says to drop."""
    return set(await workers.heartbeat(heartbeat, lease_s=LEASE_S, completion_deadline_s=DEADLINE_S))


async def joined(workers: WorkerStore, **room) -> uuid.UUID:
    """A new worker, in the pool after its first heartbeat."""
    worker_id = uuid.uuid4()
    await send(workers, beat(worker_id, 1, **room))
    return worker_id


async def on_worker(store: GenerationStore, queue: QueueStore, n: int = 1, owner: str = "alice") -> list[Start]:
    """`n` new generations, sent (STARTING) to the workers with room."""
    for i in range(n):
        await store.create(NewGeneration(owner, f"job {i}", Model.SDXL, 64, 64), max_pending=1000)
    got = await queue.round(limit=n, max_running_per_owner=1000, max_attempts=5, start_lease_s=60, worker_lease_s=3)
    assert len(got.starts) == n
    return got.starts


async def taken(queue: QueueStore, start: Start, *, running: bool, taken_at: int) -> None:
    await queue.record_starts([Taken(start, running, taken_at)], completion_deadline_s=DEADLINE_S)


async def placement(db: Database, start: Start) -> rows.Placement:
    return await asyncio.to_thread(rows.placement, db.url, start.row.generation_id)


def gid(start: Start) -> uuid.UUID:
    return start.row.generation_id


# --- joining, staying, leaving ---


async def test_a_first_heartbeat_joins_the_pool_and_the_next_ones_renew_the_lease(store, workers, queue, db):
    worker_id = uuid.uuid4()
    first = beat(worker_id, 1, slots=2, prefetch=1, models=frozenset({Model.SD}), kinds=frozenset({Kind.IMAGE}))
    assert await send(workers, first) == set()
    row = await asyncio.to_thread(rows.worker, db.url, worker_id)
    assert (row.address, row.slots, row.prefetch, row.models, row.kinds, row.draining, row.heartbeat) == (
        first.address,
        2,
        1,
        ["SD"],
        ["IMAGE"],
        False,
        1,
    )
    assert row.lease_expires_at > await asyncio.to_thread(rows.clock, db.url)
    await asyncio.to_thread(rows.end_lease, db.url, worker_id)
    await send(workers, beat(worker_id, 2, slots=2, prefetch=1))
    renewed = await asyncio.to_thread(rows.worker, db.url, worker_id)
    assert renewed.heartbeat == 2 and renewed.lease_expires_at > await asyncio.to_thread(rows.clock, db.url)
    (start,) = await on_worker(store, queue)  # the pool counts it in
    assert start.worker_id == worker_id and start.address == first.address


async def test_a_heartbeat_through_the_callback_server_joins_the_pool_and_is_answered_with_the_lease(callback_app):
    callbacks, database_url = callback_app
    worker_id = uuid.uuid4()
    answer = await callbacks.Heartbeat(heartbeat_request(worker_id=str(worker_id)), timeout=5)
    assert answer.lease.ToTimedelta() == timedelta(seconds=QueueSettings().worker_lease_s)
    assert list(answer.drop_generation_ids) == []
    row = await asyncio.to_thread(rows.worker, database_url, worker_id)
    assert (row.address, row.slots, row.prefetch, row.models, row.kinds, row.heartbeat) == (
        "127.0.0.1:50051",
        2,
        1,
        ["SD", "SDXL"],
        ["IMAGE"],
        1,
    )


async def test_heartbeats_renew_leases_while_results_take_every_connection_of_the_pool(database_url):
    """A callback server whose pool is all taken (a flood of results) still
    renews a live worker's lease at once: otherwise the worker would count
    as gone and its jobs run twice."""
    async with callback_server(database_url) as app, channel_to(app) as channel:
        callbacks = callback_pb2_grpc.CallbackServiceStub(channel)
        async with contextlib.AsyncExitStack() as taken:
            for _ in range(app.settings.db_pool_size):
                await taken.enter_async_context(app.db.connection())
            worker_id = uuid.uuid4()
            answer = await callbacks.Heartbeat(heartbeat_request(worker_id=str(worker_id)), timeout=5)
            assert answer.lease.ToTimedelta() == timedelta(seconds=QueueSettings().worker_lease_s)
            assert await asyncio.to_thread(rows.worker, database_url, worker_id) is not None


async def test_a_leaving_worker_leaves_the_pool_and_what_it_held_goes_back_to_the_queue(store, workers, queue, db):
    leaving = await joined(workers, slots=2, prefetch=1)
    running, held, starting = await on_worker(store, queue, 3)
    await taken(queue, running, running=True, taken_at=1)
    await taken(queue, held, running=False, taken_at=1)
    # Its drain timed out: one job still runs; it gave back the one it held.
    last = beat(leaving, 2, {gid(running): Reported(running=True, running_for_s=30)}, leaving=True)
    assert await send(workers, last) == {gid(running)}
    assert await asyncio.to_thread(rows.worker, db.url, leaving) is None
    for start in (running, held, starting):
        back = await placement(db, start)
        assert (back.phase, back.worker_id, back.taken_at, back.started_at, back.last_error) == (
            "QUEUED",
            None,
            None,
            None,
            LEFT_ERROR,
        )
    other = await joined(workers, slots=3, prefetch=0)
    again = await queue.round(limit=10, max_running_per_owner=10, max_attempts=5, start_lease_s=60, worker_lease_s=3)
    assert {(gid(s), s.worker_id) for s in again.starts} == {(gid(s), other) for s in (running, held, starting)}


async def test_a_draining_worker_gets_no_new_generation_and_keeps_its_own(store, workers, queue, db):
    draining = await joined(workers, slots=4)
    (mine,) = await on_worker(store, queue)
    await taken(queue, mine, running=True, taken_at=1)
    await send(workers, beat(draining, 2, {gid(mine): Reported(running=True, running_for_s=1)}, draining=True))
    assert (await asyncio.to_thread(rows.worker, db.url, draining)).draining
    other = await joined(workers, slots=1, prefetch=0)
    for i in range(3):
        await store.create(NewGeneration("bob", f"b{i}", Model.SDXL, 64, 64), max_pending=1000)
    got = await queue.round(limit=10, max_running_per_owner=10, max_attempts=5, start_lease_s=60, worker_lease_s=3)
    assert [s.worker_id for s in got.starts] == [other]
    assert await asyncio.to_thread(rows.holding, db.url) == {draining: 1, other: 1}
    assert (await placement(db, mine)).phase == "RUNNING"


# --- what a worker reports of its jobs ---


async def test_the_answer_names_the_jobs_that_are_no_longer_the_worker_s(store, workers, queue, db):
    worker_id = await joined(workers, slots=4, prefetch=0)
    cancelled, finished, moved, kept = await on_worker(store, queue, 4)
    await store.cancel(gid(cancelled), "alice")
    await store.complete(gid(finished), finished.callback_token, DONE)
    # Given to another worker: queued again while this one could not take it.
    await asyncio.to_thread(rows.requeue, db.url, str(gid(moved)))
    await asyncio.to_thread(rows.set_draining, db.url, worker_id)
    other = await joined(workers, slots=1, prefetch=0)
    (again,) = (
        await queue.round(limit=10, max_running_per_owner=10, max_attempts=5, start_lease_s=60, worker_lease_s=3)
    ).starts
    assert (gid(again), again.worker_id) == (gid(moved), other)
    unknown = uuid.uuid4()
    reported = {gid(s): Reported(running=True) for s in (cancelled, finished, moved, kept)}
    drop = await send(workers, beat(worker_id, 2, {**reported, unknown: Reported(running=False)}))
    assert drop == {gid(cancelled), gid(finished), gid(moved), unknown}
    assert (await placement(db, kept)).worker_id == worker_id
    assert (await placement(db, again)).worker_id == other


async def test_a_job_reported_running_is_running_since_the_worker_started_it(store, workers, queue, db):
    worker_id = await joined(workers, slots=1, prefetch=1)
    starting, held = await on_worker(store, queue, 2)
    await taken(queue, held, running=False, taken_at=1)
    jobs = {
        gid(starting): Reported(running=True, running_for_s=2.5),
        gid(held): Reported(running=True, running_for_s=10.0),
    }
    before = await asyncio.to_thread(rows.clock, db.url)
    assert await send(workers, beat(worker_id, 2, jobs, slots=1, prefetch=1)) == set()
    after = await asyncio.to_thread(rows.clock, db.url)
    for start, taken_at in ((starting, 2), (held, 1)):
        ran = timedelta(seconds=jobs[gid(start)].running_for_s)
        running = await placement(db, start)
        assert (running.phase, running.taken_at) == ("RUNNING", taken_at)
        assert before - ran - MS <= running.started_at <= after - ran + MS
        assert running.next_attempt_at - running.started_at == timedelta(seconds=DEADLINE_S)
    shown = convert.to_proto(await store.get(gid(starting), "alice"), LINKS)
    assert shown.start_time.ToDatetime(tzinfo=after.tzinfo) == (await placement(db, starting)).started_at


async def test_a_job_reported_waiting_while_its_start_was_unacknowledged_is_held(store, workers, queue, db):
    worker_id = await joined(workers, slots=1, prefetch=1)
    _, waiting = await on_worker(store, queue, 2)
    await send(workers, beat(worker_id, 2, {gid(waiting): Reported(running=False)}, slots=1, prefetch=1))
    held = await placement(db, waiting)
    assert (held.phase, held.taken_at, held.next_attempt_at, held.started_at) == ("HELD", 2, None, None)


async def test_a_job_the_worker_no_longer_holds_goes_back_to_the_queue(store, workers, queue, db):
    worker_id = await joined(workers, slots=2, prefetch=1)
    lost, taken_later, unacknowledged = await on_worker(store, queue, 3)
    await taken(queue, lost, running=False, taken_at=1)
    # Taken when heartbeat 2 was already on its way: 2 cannot know of it.
    await taken(queue, taken_later, running=False, taken_at=2)
    await send(workers, beat(worker_id, 2, slots=2, prefetch=1))
    back = await placement(db, lost)
    assert (back.status, back.phase, back.worker_id, back.taken_at, back.attempts, back.last_error) == (
        "PENDING",
        "QUEUED",
        None,
        None,
        1,
        LOST_ERROR,
    )
    assert (await placement(db, taken_later)).phase == "HELD"
    # Not acknowledged: its start may still be on its way; the start lease decides.
    assert (await placement(db, unacknowledged)).phase == "STARTING"
    await send(workers, beat(worker_id, 3, slots=2, prefetch=1))
    assert (await placement(db, taken_later)).phase == "QUEUED"
    assert (await placement(db, unacknowledged)).phase == "STARTING"


async def test_a_late_heartbeat_changes_nothing(store, workers, queue, db):
    worker_id = uuid.uuid4()
    await send(workers, beat(worker_id, 5, slots=2, prefetch=0))
    (held,) = await on_worker(store, queue)
    await taken(queue, held, running=False, taken_at=5)
    before = await asyncio.to_thread(rows.worker, db.url, worker_id)
    # Numbers 4 (overtaken by 5) and 5 again: it would drop the held job,
    # change the room and drain.
    for number in (4, 5):
        late = beat(worker_id, number, {uuid.uuid4(): Reported(running=True)}, slots=9, prefetch=3, draining=True)
        assert await send(workers, late) == set()
        assert await asyncio.to_thread(rows.worker, db.url, worker_id) == before
        held_now = await placement(db, held)
        assert (held_now.phase, held_now.worker_id, held_now.taken_at) == ("HELD", worker_id, 5)


# --- the dispatchers hear when the pool's room changes ---


async def test_queue_changed_is_notified_when_the_pool_s_room_changes(store, workers, queue, db):
    worker_id = uuid.uuid4()
    async with await psycopg.AsyncConnection.connect(db.url, autocommit=True) as listener:
        await listener.execute(f"LISTEN {QUEUE_CHANNEL}")

        async def heard_until_now() -> list[str]:
            """What the listener heard until now: a notification this sends
            arrives after all those sent by transactions committed before."""
            sentinel = f"now {uuid.uuid4()}"
            async with db.connection() as conn:
                await conn.execute("SELECT pg_notify(%s, %s)", (QUEUE_CHANNEL, sentinel))
            heard = []
            async for note in listener.notifies(timeout=10):
                if note.payload == sentinel:
                    return heard
                heard.append(note.payload)
            raise AssertionError("the sentinel notification never arrived")

        async def notified(heartbeat: Heartbeat) -> bool:
            """Whether recording the heartbeat sent queue_changed."""
            await heard_until_now()
            await send(workers, heartbeat)
            return bool(await heard_until_now())

        assert await notified(beat(worker_id, 1, slots=2))  # joined
        assert not await notified(beat(worker_id, 2, slots=2))  # the same room
        assert await notified(beat(worker_id, 3, slots=3))  # more slots
        lost, running = await on_worker(store, queue, 2)
        await taken(queue, lost, running=False, taken_at=3)
        jobs = {gid(running): Reported(running=True)}
        holding = {**jobs, gid(lost): Reported(running=False)}
        assert not await notified(beat(worker_id, 4, holding, slots=3))  # one started: no room freed
        assert await notified(beat(worker_id, 5, jobs, slots=3))  # `lost` no longer held: room freed
        assert not await notified(beat(worker_id, 4, slots=1))  # late: changes nothing
        assert await notified(beat(worker_id, 6, jobs, slots=3, draining=True))
        assert await notified(beat(worker_id, 7, slots=3, draining=True, leaving=True))


# --- what a heartbeat may say ---


def heartbeat_request(**fields) -> callback_pb2.HeartbeatRequest:
    """A valid heartbeat, but for `fields`."""
    request = {
        "worker_id": str(uuid.uuid4()),
        "address": "127.0.0.1:50051",
        "slots": 2,
        "prefetch": 1,
        "models": [ai_pb2.MODEL_SD, ai_pb2.MODEL_SDXL],
        "kinds": [ai_pb2.KIND_IMAGE],
        "heartbeat": 1,
    }
    return callback_pb2.HeartbeatRequest(**{**request, **fields})


def job(generation_id: str = "", seconds: int = 0) -> callback_pb2.HeldJob:
    return callback_pb2.HeldJob(
        generation_id=generation_id or str(uuid.uuid4()), running=True, running_for=Duration(seconds=seconds)
    )


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"worker_id": "worker-1"}, "worker_id"),
        ({"address": ""}, "address"),
        ({"address": "worker-1"}, "address"),
        ({"address": "worker-1:0"}, "address"),
        ({"address": "worker-1:65536"}, "address"),
        ({"address": "http://worker-1:50051"}, "address"),
        ({"slots": 0}, "slots"),
        ({"slots": -1}, "slots"),
        ({"slots": 2**31 - 1}, "slots"),
        ({"prefetch": -1}, "prefetch"),
        ({"prefetch": 2**31 - 1}, "prefetch"),
        ({"slots": 9_000, "prefetch": 1_001}, "prefetch"),
        ({"models": []}, "models"),
        ({"models": [ai_pb2.MODEL_UNSPECIFIED]}, "models"),
        ({"models": [ai_pb2.MODEL_SD, 99]}, "models"),
        ({"kinds": []}, "kinds"),
        ({"kinds": [99]}, "kinds"),
        ({"heartbeat": 0}, "heartbeat"),
        ({"heartbeat": 2**63}, "heartbeat"),
        ({"jobs": [job("job-1")]}, "jobs[0].generation_id"),
        ({"jobs": [job(), job(seconds=-1)]}, "jobs[1].running_for"),
        ({"jobs": [job(seconds=10**12)]}, "jobs[0].running_for"),
        ({"jobs": [job(seconds=2**62)]}, "jobs[0].running_for"),
        ({"jobs": [job() for _ in range(10_001)]}, "jobs"),
    ],
)
async def test_a_heartbeat_with_a_bad_field_is_invalid_argument_naming_it_and_changes_nothing(
    callback_app, fields, field
):
    callbacks, database_url = callback_app
    request = heartbeat_request(**fields)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await callbacks.Heartbeat(request, timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)
    bad = error_details_pb2.BadRequest()
    assert any(detail.Unpack(bad) for detail in status.details)
    assert [violation.field for violation in bad.field_violations] == [field]
    if field != "worker_id":
        assert await asyncio.to_thread(rows.worker, database_url, uuid.UUID(request.worker_id)) is None
