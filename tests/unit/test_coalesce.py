"""Coalescing (leo_mesh.coalesce), with a batch function of the test's own:
items go out in arrival order, in batches bounded in size and in number at
once, and each caller gets its own outcome, whatever the arrivals."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leo_mesh.coalesce import Coalescer, OutcomesMissing


class Batches:
    """A batch function: doubles each item, answers a multiple of 5 with its
    own error; takes `turns` turns of the event loop per batch; records the
    batches and how many ran at once."""

    def __init__(self, turns: list[int] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.turns = turns or [0]
        self.running = 0
        self.most_running = 0
        self.fail_with: BaseException | None = None
        self.short = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list[int]) -> list:
        self.batches.append(list(items))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            for _ in range(self.turns[len(self.batches) % len(self.turns)]):
                await asyncio.sleep(0)
            await self.gate.wait()
            if self.fail_with is not None:
                failure, self.fail_with = self.fail_with, None
                raise failure
            outcomes = [ValueError(item) if item % 5 == 0 else item * 2 for item in items]
            return outcomes[:-1] if self.short else outcomes
        finally:
            self.running -= 1


def coalescer(run: Batches, **policy) -> Coalescer[int, int]:
    return Coalescer(run, name="test", **{"max_in_flight": 2, "max_batch_size": 100, **policy})


async def turns(count: int = 1) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def arrive(batcher: Coalescer[int, int], arrivals: list[int]) -> list:
    """Each item asked for by a task of its own, `arrivals[i]` items per turn of the event loop."""
    tasks, item = [], 1
    for count in arrivals:
        for _ in range(count):
            tasks.append(asyncio.create_task(batcher(item)))
            item += 1
        await turns()
    return await asyncio.gather(*tasks, return_exceptions=True)


@given(
    arrivals=st.lists(st.integers(0, 6), min_size=1, max_size=8),
    max_in_flight=st.integers(1, 3),
    max_batch_size=st.integers(1, 5),
    at_once=st.booleans(),
    batch_turns=st.lists(st.integers(0, 3), min_size=1, max_size=4),
)
def test_every_caller_gets_its_own_outcome_from_bounded_batches_in_arrival_order(
    arrivals, max_in_flight, max_batch_size, at_once, batch_turns
):
    run = Batches(batch_turns)
    batcher = coalescer(run, max_in_flight=max_in_flight, max_batch_size=max_batch_size, start_at_once=at_once)
    got = asyncio.run(arrive(batcher, arrivals))
    items = list(range(1, sum(arrivals) + 1))
    for item, outcome in zip(items, got, strict=True):
        if item % 5 == 0:
            assert isinstance(outcome, ValueError) and outcome.args == (item,)
        else:
            assert outcome == item * 2
    assert [item for batch in run.batches for item in batch] == items
    assert all(1 <= len(batch) <= max_batch_size for batch in run.batches)
    assert run.most_running <= max_in_flight


async def test_items_of_one_turn_go_together_and_later_ones_wait_for_a_free_slot():
    run = Batches()
    run.gate.clear()
    batcher = coalescer(run, max_in_flight=1)
    first = [asyncio.create_task(batcher(i)) for i in (1, 2)]
    await turns(3)
    later = [asyncio.create_task(batcher(i)) for i in (3, 4)]
    await turns(3)
    later.append(asyncio.create_task(batcher(6)))  # a turn apart, while the first batch is out
    await turns(3)
    assert run.batches == [[1, 2]]
    run.gate.set()
    assert await asyncio.gather(*first, *later) == [2, 4, 6, 8, 12]
    assert run.batches == [[1, 2], [3, 4, 6]]


async def test_at_once_a_batch_starts_with_the_first_item_that_finds_a_free_slot():
    run = Batches()
    run.gate.clear()
    batcher = coalescer(run, max_in_flight=1, start_at_once=True)
    tasks = [asyncio.create_task(batcher(i)) for i in (1, 2, 3)]
    await turns(3)
    assert run.batches == [[1]]
    run.gate.set()
    assert await asyncio.gather(*tasks) == [2, 4, 6]
    assert run.batches == [[1], [2, 3]]


async def test_a_batch_that_fails_fails_each_of_its_callers_and_the_next_batch_goes_out():
    run = Batches()
    batcher = coalescer(run)
    run.fail_with = RuntimeError("the channel broke")
    got = await asyncio.gather(batcher(1), batcher(2), return_exceptions=True)
    assert [type(outcome) for outcome in got] == [RuntimeError, RuntimeError]
    assert await batcher(3) == 6
    assert run.batches == [[1, 2], [3]]


async def test_an_answer_without_an_outcome_for_every_item_fails_them_all():
    run = Batches()
    run.short = True
    got = await asyncio.gather(*(coalescer(run)(i) for i in (1, 2)), return_exceptions=True)
    assert [type(outcome) for outcome in got] == [OutcomesMissing, OutcomesMissing]


async def test_a_caller_that_stops_waiting_leaves_the_others_alone():
    run = Batches()
    run.gate.clear()
    batcher = coalescer(run)
    leaving = asyncio.create_task(batcher(1))
    staying = asyncio.create_task(batcher(2))
    await turns(3)
    leaving.cancel()
    run.gate.set()
    assert await staying == 4
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_batches_are_cut_by_the_sizes_of_their_items():
    run = Batches()
    batcher = coalescer(run, max_batch_size=10, size=lambda item: item, max_in_flight=3)
    assert await asyncio.gather(*(batcher(i) for i in (4, 6, 7, 12, 1))) == [8, 12, 14, 24, 2]
    assert run.batches == [[4, 6], [7], [12], [1]]  # 12 is over the limit: alone
