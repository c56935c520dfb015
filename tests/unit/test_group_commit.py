"""Group commit (leo_mesh.db.group_commit), with a batch function of the
test's own: what a transaction's failure does to its callers. How items
gather into batches is leo_mesh.coalesce's (tests/unit/test_coalesce.py)."""

from __future__ import annotations

import asyncio

import pytest

from leo_mesh.db.group_commit import TransactionBatcher
from leo_mesh.errors import DatabaseUnavailable, GenerationNotFound, ServerBusy


class Recorder:
    """A batch function: doubles each number, refuses negatives (a domain
    error of that item), and fails as a whole when asked to: any batch of
    more than one, or holding 13, or always for an outage."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.fail_with: Exception | None = None
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items):
        self.batches.append(list(items))
        await self.gate.wait()
        if self.fail_with is not None and (
            len(items) > 1 or items[0] == 13 or isinstance(self.fail_with, DatabaseUnavailable | ServerBusy)
        ):
            raise self.fail_with
        return [GenerationNotFound(i) if i < 0 else i * 2 for i in items]


async def results(commit: TransactionBatcher, items: list[int]) -> list:
    return await asyncio.gather(*(commit(i) for i in items), return_exceptions=True)


async def test_a_call_that_finds_a_free_slot_commits_at_once_and_those_arriving_meanwhile_go_together():
    run = Recorder()
    commit = TransactionBatcher(run, name="test", max_in_flight=1)
    run.gate.clear()
    first = asyncio.create_task(commit(1))
    await asyncio.sleep(0)
    rest = asyncio.gather(*(commit(i) for i in range(2, 7)))
    await asyncio.sleep(0.01)
    run.gate.set()
    assert await first == 2 and await rest == [4, 6, 8, 10, 12]
    assert run.batches == [[1], [2, 3, 4, 5, 6]]


async def test_one_item_refused_does_not_fail_the_others():
    commit = TransactionBatcher(Recorder(), name="test")
    got = await results(commit, [1, -1, 2])
    assert got[0] == 2 and got[2] == 4
    assert isinstance(got[1], GenerationNotFound)


async def test_a_batch_that_fails_runs_its_items_alone_so_only_the_bad_one_fails():
    run = Recorder()
    run.fail_with = ValueError("a value the database cannot hold")
    commit = TransactionBatcher(run, name="test", max_in_flight=1)
    run.gate.clear()
    first = asyncio.create_task(commit(11))  # in flight while the others arrive
    await asyncio.sleep(0)
    pending = asyncio.gather(*(commit(i) for i in (12, 13, 14)), return_exceptions=True)
    await asyncio.sleep(0.01)
    run.gate.set()
    got = await pending
    assert await first == 22
    assert got[0] == 24 and got[2] == 28
    assert isinstance(got[1], ValueError)
    assert run.batches == [[11], [12, 13, 14], [12], [13], [14]]


@pytest.mark.parametrize("outage", [DatabaseUnavailable, ServerBusy])
async def test_a_database_outage_reaches_every_caller_of_the_batch(outage):
    run = Recorder()
    run.fail_with = outage()
    commit = TransactionBatcher(run, name="test", max_in_flight=1)
    run.gate.clear()
    first = asyncio.create_task(commit(1))
    await asyncio.sleep(0)
    rest = asyncio.gather(*(commit(i) for i in (2, 3)), return_exceptions=True)
    await asyncio.sleep(0.01)
    run.gate.set()
    got = [await asyncio.gather(first, return_exceptions=True), await rest]
    assert all(isinstance(error, outage) for error in [*got[0], *got[1]])
    assert run.batches == [[1], [2, 3]]  # not retried alone


async def test_batches_are_bounded():
    run = Recorder()
    commit = TransactionBatcher(run, name="test", max_batch=3, max_in_flight=1)
    run.gate.clear()
    pending = asyncio.gather(*(commit(i) for i in range(8)))
    await asyncio.sleep(0.01)
    run.gate.set()
    assert await pending == [i * 2 for i in range(8)]
    assert max(map(len, run.batches)) <= 3
