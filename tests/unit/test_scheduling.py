"""The queue's decisions (leo_mesh.scheduling), as properties: fair shares by
weight, no starvation, classes, caps and room, places that never move back."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leo_mesh import scheduling
from leo_mesh.rules import Kind, Model
from leo_mesh.scheduling import (
    Arrival,
    Candidate,
    Held,
    Phase,
    Pool,
    Priority,
    Reported,
    Waiting,
    Worker,
)


@dataclass
class Queue:
    """A queue driven only by the rules: arrivals get tags, the smallest tag
    leaves first and moves the virtual time."""

    virtual_time: float = 0.0
    lanes: dict = field(default_factory=dict)
    waiting: list[tuple[Waiting, str]] = field(default_factory=list)
    clock: itertools.count = field(default_factory=lambda: itertools.count(1))

    def arrive(self, owner: str, priority: Priority = Priority.NORMAL, weight: int = 1, cost: float = 1.0) -> Waiting:
        (tag,), lanes = scheduling.tags([Arrival(owner, priority, weight, cost)], self.lanes, self.virtual_time)
        self.lanes.update(lanes)
        item = Waiting(uuid.uuid4(), tag, float(next(self.clock)), priority)
        self.waiting.append((item, owner))
        return item

    def leave_first(self) -> tuple[Waiting, str]:
        first = min(self.waiting, key=lambda entry: entry[0].order())
        self.waiting.remove(first)
        self.virtual_time = scheduling.virtual_time_after(self.virtual_time, [first[0].tag])
        return first

    def cancel(self, index: int) -> None:
        del self.waiting[index % len(self.waiting)]

    def places(self) -> dict[uuid.UUID, int]:
        return scheduling.positions(item for item, _ in self.waiting)


# --- tags ---


@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(list(Priority)), st.integers(1, 5)), max_size=30))
def test_a_batch_of_arrivals_gets_the_tags_it_would_get_one_by_one(specs):
    arrivals = [Arrival(owner, priority, weight, 1.5) for owner, priority, weight in specs]
    together, lanes_together = scheduling.tags(arrivals, {}, 2.0)
    lanes: dict = {}
    alone = []
    for arrival in arrivals:
        (tag,), changed = scheduling.tags([arrival], lanes, 2.0)
        lanes.update(changed)
        alone.append(tag)
    assert together == alone
    assert lanes_together == lanes


def test_an_owner_who_was_idle_starts_level_with_the_others_not_ahead():
    (tag,), _ = scheduling.tags([Arrival("idle", Priority.NORMAL, 1, 1.0)], {("idle", Priority.NORMAL): 3.0}, 50.0)
    assert tag == 50.0


def test_a_lane_s_arrivals_queue_one_behind_the_other_by_cost_over_weight():
    arrivals = [Arrival("a", Priority.NORMAL, 2, 4.0)] * 3
    tags, lanes = scheduling.tags(arrivals, {}, 0.0)
    step = 4.0 / (2 * scheduling.CLASS_WEIGHTS[Priority.NORMAL])
    assert tags == [0.0, step, 2 * step] and lanes == {("a", Priority.NORMAL): 3 * step}


# --- fair share ---


def test_a_light_owner_s_one_generation_leaves_next_behind_a_heavy_backlog():
    queue = Queue()
    for _ in range(200):
        queue.arrive("alice")
    for _ in range(17):
        queue.leave_first()
    bob = queue.arrive("bob")
    assert queue.leave_first()[0] == bob


@pytest.mark.parametrize("weights", [(3, 1), (1, 1), (5, 2)])
def test_two_backlogged_owners_share_by_their_keys_weights(weights):
    queue = Queue()
    for owner, weight in zip("ab", weights, strict=True):
        for _ in range(600):
            queue.arrive(owner, weight=weight)
    served = Counter(queue.leave_first()[1] for _ in range(400))
    expected = weights[0] / sum(weights)
    assert abs(served["a"] / 400 - expected) <= 0.01


def test_a_steady_high_priority_stream_leaves_a_low_backlog_its_share():
    queue = Queue()
    for _ in range(500):
        queue.arrive("batch", Priority.LOW)
    low = 0
    for _ in range(1700):
        queue.arrive("interactive", Priority.HIGH)  # as fast as generations leave
        if queue.leave_first()[1] == "batch":
            low += 1
    share = scheduling.CLASS_WEIGHTS[Priority.LOW] / (
        scheduling.CLASS_WEIGHTS[Priority.LOW] + scheduling.CLASS_WEIGHTS[Priority.HIGH]
    )
    assert abs(low / 1700 - share) <= 0.01


def test_a_high_priority_arrival_leaves_before_the_queued_lower_classes():
    queue = Queue()
    for owner in ("a", "b"):
        for priority in (Priority.LOW, Priority.NORMAL):
            for _ in range(20):
                queue.arrive(owner, priority)
    for _ in range(9):
        queue.leave_first()
    urgent = queue.arrive("c", Priority.HIGH)
    assert queue.leave_first()[0] == urgent


@settings(max_examples=60)
@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from(list(Priority)), st.integers(1, 4)), min_size=1),
    st.integers(0, 10),
)
def test_nothing_waits_forever_however_the_others_keep_arriving(backlog, index):
    """A waiting generation leaves after a bounded number of others, even
    while every other lane keeps arriving as fast as generations leave."""
    queue = Queue()
    for owner, priority, weight in backlog:
        queue.arrive(owner, priority, weight)
    watched = queue.waiting[index % len(queue.waiting)][0]
    lanes = {(owner, priority, weight) for owner, priority, weight in backlog}
    bound = len(backlog) * max(scheduling.CLASS_WEIGHTS.values()) * 4 + 100
    for _ in range(bound):
        item, _ = queue.leave_first()
        if item == watched:
            return
        for owner, priority, weight in lanes:
            queue.arrive(owner, priority, weight)
    raise AssertionError(f"still waiting after {bound} turns")


# --- assignment ---

models = st.frozensets(st.sampled_from(list(Model)), min_size=1)
kinds = st.frozensets(st.sampled_from(list(Kind)), min_size=1)
workers_strategy = st.lists(
    st.builds(
        Worker,
        id=st.uuids(),
        slots=st.integers(1, 4),
        prefetch=st.integers(0, 2),
        models=models,
        kinds=kinds,
        holding=st.integers(0, 6),
    ),
    max_size=4,
    unique_by=lambda worker: worker.id,
)
candidates_strategy = st.lists(
    st.builds(
        Candidate,
        row_id=st.uuids(),
        owner=st.sampled_from("abc"),
        model=st.sampled_from(list(Model)),
        kind=st.sampled_from(list(Kind)),
        tag=st.floats(0, 100),
    ),
    max_size=25,
    unique_by=lambda candidate: candidate.row_id,
)


@given(
    candidates_strategy, workers_strategy, st.dictionaries(st.sampled_from("abc"), st.integers(0, 4)), st.integers(1, 5)
)
def test_assignments_fit_every_worker_s_room_and_every_owner_s_cap_and_leave_nothing_that_fits(
    candidates, workers, on_workers, cap
):
    made = scheduling.assign(candidates, workers, on_workers, cap)
    by_id = {worker.id: worker for worker in workers}
    holding = {worker.id: worker.holding for worker in workers}
    owners = Counter(on_workers)
    assigned = set()
    for assignment in made:
        worker, candidate = by_id[assignment.worker_id], assignment.candidate
        assert worker.serves(candidate.model, candidate.kind)
        assert assignment.runs_at_once == (holding[worker.id] < worker.slots)
        holding[worker.id] += 1
        owners[candidate.owner] += 1
        assigned.add(candidate.row_id)
        assert holding[worker.id] <= max(worker.holding, worker.slots + worker.prefetch)
        assert owners[candidate.owner] <= max(on_workers.get(candidate.owner, 0), cap)
    # In the queue's order, and each one passed over had no way in.
    order = [c.row_id for c in candidates if c.row_id in assigned]
    assert [a.candidate.row_id for a in made] == order
    for candidate in candidates:
        if candidate.row_id not in assigned:
            room = any(
                w.serves(candidate.model, candidate.kind) and holding[w.id] < w.slots + w.prefetch for w in workers
            )
            assert owners[candidate.owner] >= cap or not room


@given(
    candidates_strategy,
    workers_strategy,
    st.dictionaries(st.sampled_from("abc"), st.integers(0, 4)),
    st.integers(1, 5),
    st.integers(0, 30),
)
def test_a_limit_keeps_the_first_assignments(candidates, workers, on_workers, cap, limit):
    everything = scheduling.assign(candidates, workers, on_workers, cap)
    assert scheduling.assign(candidates, workers, on_workers, cap, limit=limit) == everything[:limit]


def test_no_candidate_is_read_past_the_limit_or_once_no_worker_has_room():
    read: list[int] = []

    def candidates():
        for i in range(100):
            read.append(i)
            yield Candidate(uuid.UUID(int=i + 1), "abcd"[i % 4], Model.SD, Kind.IMAGE, float(i))

    roomy = Worker(uuid.UUID(int=1), slots=8, prefetch=2, models=frozenset(Model), kinds=frozenset(Kind), holding=0)
    assert len(scheduling.assign(candidates(), [roomy], {}, 100, limit=3)) == 3
    assert len(read) == 3
    read.clear()
    two_free = Worker(uuid.UUID(int=2), slots=2, prefetch=1, models=frozenset(Model), kinds=frozenset(Kind), holding=1)
    assert len(scheduling.assign(candidates(), [two_free], {}, 100)) == 2
    assert len(read) == 2


def test_a_free_slot_is_filled_before_any_prefetch():
    full, idle = (
        Worker(uuid.UUID(int=1), slots=2, prefetch=2, models=frozenset(Model), kinds=frozenset(Kind), holding=2),
        Worker(uuid.UUID(int=2), slots=2, prefetch=2, models=frozenset(Model), kinds=frozenset(Kind), holding=1),
    )
    candidate = Candidate(uuid.uuid4(), "a", Model.SD, Kind.IMAGE, 0.0)
    (made,) = scheduling.assign([candidate], [full, idle], {}, 10)
    assert made.worker_id == idle.id and made.runs_at_once


def test_only_a_worker_that_serves_the_kind_gets_it():
    images = Worker(uuid.UUID(int=1), 4, 0, frozenset(Model), frozenset({Kind.IMAGE}), 0)
    video = Candidate(uuid.uuid4(), "a", Model.SD, Kind.VIDEO, 0.0)
    assert scheduling.assign([video], [images], {}, 10) == []


# --- places in the queue ---

events = st.lists(
    st.one_of(
        st.tuples(st.just("arrive"), st.sampled_from("abc"), st.sampled_from(list(Priority)), st.integers(1, 3)),
        st.tuples(st.just("leave")),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
    ),
    max_size=60,
)


@settings(max_examples=150)
@given(events)
def test_a_place_never_grows_unless_a_higher_class_arrives_in_front(history):
    queue = Queue()
    for _ in range(5):
        queue.arrive("a")
    before = queue.places()
    for event in history:
        kind = event[0]
        if kind == "arrive":
            _, owner, priority, weight = event
            newcomer = queue.arrive(owner, priority, weight)
        elif kind == "leave" and queue.waiting:
            queue.leave_first()
        elif kind == "cancel" and queue.waiting:
            queue.cancel(event[1])
        after = queue.places()
        for item, _ in queue.waiting:
            if item.row_id not in before:
                continue
            jumped = kind == "arrive" and newcomer.priority > item.priority and newcomer.order() < item.order()
            assert after[item.row_id] <= before[item.row_id] + (1 if jumped else 0)
        before = after


@given(events)
def test_the_first_in_line_is_place_one_and_no_place_is_beyond_the_queue(history):
    queue = Queue()
    for event in history:
        if event[0] == "arrive":
            queue.arrive(event[1], event[2], event[3])
        elif event[0] == "leave" and queue.waiting:
            queue.leave_first()
    places = queue.places()
    if queue.waiting:
        first = min(queue.waiting, key=lambda entry: entry[0].order())[0]
        assert places[first.row_id] == 1
        assert all(1 <= place <= len(queue.waiting) for place in places.values())


def test_a_queue_in_arrival_order_counts_one_to_n():
    queue = Queue()
    items = [queue.arrive("a") for _ in range(6)]
    assert [queue.places()[item.row_id] for item in items] == [1, 2, 3, 4, 5, 6]


# --- estimated starts ---


def test_idle_slots_start_the_first_generations_at_once_then_in_rounds():
    queue = Queue()
    items = [queue.arrive("a") for _ in range(7)]
    pair = (Model.SDXL, Kind.IMAGE)
    starts = scheduling.estimated_starts([i for i, _ in queue.waiting], {pair: Pool((0.0, 0.0, 0.0))}, {pair: 2.0})
    assert [starts[item.row_id] for item in items] == [0, 0, 0, 2, 2, 2, 4]


@given(st.lists(st.floats(0, 30), min_size=1, max_size=5), st.integers(1, 30), st.floats(0.1, 20))
def test_later_in_line_never_starts_earlier(frees, count, duration):
    queue = Queue()
    items = [queue.arrive("a") for _ in range(count)]
    pair = (Model.SDXL, Kind.IMAGE)
    starts = scheduling.estimated_starts([i for i, _ in queue.waiting], {pair: Pool(tuple(frees))}, {pair: duration})
    ordered = [starts[item.row_id] for item in items]
    assert ordered == sorted(ordered)
    assert ordered[0] == min(frees)


def test_a_pair_no_worker_serves_has_no_estimate():
    queue = Queue()
    item = queue.arrive("a")
    assert scheduling.estimated_starts([item], {}, {}) == {}


# --- heartbeats ---

A, B, C, D = (uuid.UUID(int=n) for n in range(1, 5))


def test_a_heartbeat_drops_what_is_not_the_worker_s_and_finds_what_it_lost():
    assigned = {
        A: Held(Phase.RUNNING, taken_at=3),
        B: Held(Phase.HELD, taken_at=7),  # taken after this heartbeat was made
        C: Held(Phase.STARTING, taken_at=None),
    }
    reported = {D: Reported(running=True), C: Reported(running=False)}
    seen = scheduling.reconcile(assigned, reported, heartbeat=5)
    assert seen.drop == {D}
    assert seen.lost == {A}
    assert seen.taken == {C} and dict(seen.started) == {}


def test_a_heartbeat_says_which_held_generations_started_and_since_when():
    assigned = {A: Held(Phase.HELD, taken_at=1), B: Held(Phase.RUNNING, taken_at=1), C: Held(Phase.STARTING, None)}
    reported = {A: Reported(True, 0.4), B: Reported(True, 9.0), C: Reported(True, 0.1)}
    seen = scheduling.reconcile(assigned, reported, heartbeat=2)
    assert dict(seen.started) == {A: 0.4, C: 0.1}
    assert not seen.drop and not seen.lost and not seen.taken


@given(
    st.dictionaries(
        st.uuids(), st.builds(Held, st.sampled_from(list(scheduling.ON_A_WORKER)), st.none() | st.integers(0, 9))
    ),
    st.dictionaries(st.uuids(), st.builds(Reported, st.booleans(), st.floats(0, 9))),
    st.integers(0, 10),
)
def test_nothing_is_both_kept_and_lost_and_only_what_it_holds_is_dropped(assigned, reported, heartbeat):
    seen = scheduling.reconcile(assigned, reported, heartbeat)
    assert seen.drop <= reported.keys() and not seen.drop & assigned.keys()
    assert seen.lost <= assigned.keys() and not seen.lost & reported.keys()
    assert all(assigned[gid].taken_at is not None and assigned[gid].taken_at < heartbeat for gid in seen.lost)
    assert set(seen.started) | seen.taken <= assigned.keys() & reported.keys()


def test_a_worker_s_slots_free_as_its_soonest_generations_end():
    busy = scheduling.Serving(2, frozenset({Model.SD}), frozenset({Kind.IMAGE}), (5.0, 1.0, 9.0))
    idle = scheduling.Serving(2, frozenset({Model.SD}), frozenset({Kind.IMAGE, Kind.VIDEO}))
    made = scheduling.pools([busy, idle])
    assert made[(Model.SD, Kind.IMAGE)] == Pool((0.0, 0.0, 1.0, 5.0))
    assert made[(Model.SD, Kind.VIDEO)] == Pool((0.0, 0.0))
    assert (Model.SDXL, Kind.IMAGE) not in made


# --- which workers are gone ---

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LEASE_S = 3.0


def lease(expires_in_s: float, alive_for_s: float, beat_ago_s: float | None = None) -> scheduling.Lease:
    """A lease ending in `expires_in_s`, kept for `alive_for_s`; its last
    heartbeat a lease before it ends unless `beat_ago_s` says when."""
    beat_ago_s = LEASE_S - expires_in_s if beat_ago_s is None else beat_ago_s
    return scheduling.Lease(
        uuid.uuid4(),
        NOW - timedelta(seconds=beat_ago_s),
        NOW + timedelta(seconds=expires_in_s),
        NOW - timedelta(seconds=alive_for_s),
    )


def test_a_silent_worker_is_gone_while_another_keeps_beating():
    steady, silent = lease(3, 600), lease(-0.1, 600)
    assert scheduling.gone([steady, silent], NOW, LEASE_S) == [silent.worker_id]


def test_when_every_lease_ends_together_no_worker_is_gone():
    """The callback server was away: the workers keep their jobs."""
    leases = [lease(-5, 600), lease(-4.5, 600)]
    assert scheduling.gone(leases, NOW, LEASE_S) == []


def test_a_lease_ending_first_is_not_gone_when_the_others_have_not_beaten_since():
    """The callback server went away: one lease ends a moment before the
    other, whose last heartbeat came before that end."""
    first, second = lease(-0.05, 600), lease(0.05, 600)
    assert scheduling.gone([first, second], NOW, LEASE_S) == []


def test_after_an_outage_the_first_back_does_not_condemn_the_others_at_once():
    first_back, not_yet = lease(LEASE_S, 0.5, beat_ago_s=0), lease(-20, 600)
    assert scheduling.gone([first_back, not_yet], NOW, LEASE_S) == []
    # A whole lease later with no heartbeat from it, it is gone.
    later = NOW + timedelta(seconds=LEASE_S + 0.5)
    beating = scheduling.Lease(first_back.worker_id, later, later + timedelta(seconds=LEASE_S), first_back.alive_since)
    assert scheduling.gone([beating, not_yet], later, LEASE_S) == [not_yet.worker_id]


@given(st.lists(st.tuples(st.floats(-30, 30), st.floats(0, 600), st.floats(0, 60)), max_size=8))
def test_only_expired_workers_go_and_only_when_a_heartbeat_came_after(specs):
    leases = [lease(expires, alive, beat_ago) for expires, alive, beat_ago in specs]
    gone = set(scheduling.gone(leases, NOW, LEASE_S))
    expired = {lease.worker_id for lease in leases if lease.expires_at < NOW}
    assert gone <= expired
    if len(expired) == len(leases):
        assert gone == set()
    for silent in leases:
        if silent.worker_id in gone:
            assert any(w.heartbeat_at > silent.expires_at and w.expires_at >= NOW for w in leases)
