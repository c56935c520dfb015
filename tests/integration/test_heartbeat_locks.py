"""Statements that lock several generations lock them in one order, by
id, as a batch of results or progress reports does. Otherwise two of them
can each hold a row the other waits for, and PostgreSQL aborts one
(deadlock detected): a heartbeat lost so can end its worker's lease and
send every job the worker holds back to the queue; a round's record of
its sends lost so leaves them STARTING until their start lease ends."""

from __future__ import annotations

import asyncio
import uuid

import psycopg

from leo_mesh.db.generations import NewGeneration
from leo_mesh.db.queue import QueueStore, Taken
from leo_mesh.db.workers import Heartbeat, WorkerStore
from leo_mesh.rules import Kind, Model
from leo_mesh.scheduling import Phase
from tests import rows
from tests.inprocess import signed_webhook_body
from tests.integration.ai_side import OWNER, dispatched


async def _blocked_on_a_lock(database_url: str) -> None:
    """Until a statement on this database waits for a lock (the test's own batch never does)."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        while True:
            cursor = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if (await cursor.fetchone())[0]:
                return
            await asyncio.sleep(0.01)


async def _out_of_order_pair(database_url: str) -> tuple[uuid.UUID, uuid.UUID]:
    """Two of the worker's generations whose order by id (a, b) is not their
    order in the table, the order in which a scan that sorts nothing meets them."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as reader:
        cursor = await reader.execute(
            'SELECT id FROM generations WHERE "workerId" = %s ORDER BY ctid', (rows.FAKE_WORKER_ID,)
        )
        in_table = [row_id for (row_id,) in await cursor.fetchall()]
    return next((x, y) for i, y in enumerate(in_table) for x in in_table[i + 1 :] if x < y)


async def test_a_heartbeat_and_a_batch_locking_the_same_rows_in_id_order_both_go_through(db, store, database_url):
    for i in range(6):
        await dispatched(store, f"on the worker {i}")
    a, b = await _out_of_order_pair(database_url)

    beat = Heartbeat(
        worker_id=rows.FAKE_WORKER_ID,
        address=rows.FAKE_WORKER_ADDRESS,
        slots=1000,
        prefetch=0,
        models=frozenset(Model),
        kinds=frozenset(Kind),
        number=2,
        draining=False,
        leaving=False,
        jobs={},
    )
    async with await psycopg.AsyncConnection.connect(database_url) as batch:
        # A batch of results takes its rows by id: a first.
        await batch.execute("SELECT 1 FROM generations WHERE id = %s FOR UPDATE", (a,))
        heartbeat = asyncio.create_task(WorkerStore(db).heartbeat(beat, lease_s=60, completion_deadline_s=60))
        await asyncio.wait_for(_blocked_on_a_lock(database_url), 10)
        # Then b: held by the heartbeat if it took the table's order.
        await batch.execute("SELECT 1 FROM generations WHERE id = %s FOR UPDATE", (b,))
        await batch.commit()
    assert await asyncio.wait_for(heartbeat, 10) == []


async def test_a_round_s_record_of_its_sends_and_a_batch_locking_the_same_rows_both_go_through(db, store, database_url):
    await asyncio.to_thread(rows.ensure_worker, database_url)
    for i in range(6):
        await store.create(NewGeneration(OWNER, f"sent {i}", Model.SDXL, 64, 64), max_pending=100)
    queue = QueueStore(db, webhook_body=signed_webhook_body)
    planned = await queue.round(limit=10, max_running_per_owner=10, max_attempts=5, start_lease_s=60, worker_lease_s=3)
    a, b = await _out_of_order_pair(database_url)
    # The worker's answers, b first (in the table's order too, whichever way the update meets them).
    starts = {start.row.id: start for start in planned.starts}
    answers = [Taken(starts[b], running=True, taken_at=1), Taken(starts[a], running=True, taken_at=1)]
    async with await psycopg.AsyncConnection.connect(database_url) as batch:
        await batch.execute("SELECT 1 FROM generations WHERE id = %s FOR UPDATE", (a,))
        recording = asyncio.create_task(queue.record_starts(answers, completion_deadline_s=60))
        await asyncio.wait_for(_blocked_on_a_lock(database_url), 10)
        await batch.execute("SELECT 1 FROM generations WHERE id = %s FOR UPDATE", (b,))
        await batch.commit()
    assert await asyncio.wait_for(recording, 10) == []
    phases = {(await store.get(starts[row_id].row.generation_id, OWNER)).phase for row_id in (a, b)}
    assert phases == {Phase.RUNNING}
