"""The queue's decisions, as plain code: which generation goes to which AI
worker, in what order, where each waiting one stands, and when it should
start. No I/O; the stores read state, call these, and write what they decide.

Order: start-time fair queuing. Each owner has a lane per priority class;
a generation's tag is fixed when it is created:

    start  = max(the lane's last finish, the queue's virtual time)
    finish = start + cost / (key weight * class weight)

and the queue hands out generations in tag order (ties: the higher class,
then the older first). The
virtual time is the tag of the latest generation handed out, so an owner
who was idle starts level with the others (no credit is banked while idle),
one owner's backlog sits behind a newcomer's single job, an owner whose key
weighs 3 gets three times the pool of one whose key weighs 1 when both wait,
and a lower class keeps its share (class weights below): it is never starved.

A worker takes at most `slots + prefetch` generations; an owner has at most
`max_running` on workers at once.
"""

from __future__ import annotations

import bisect
import enum
import heapq
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from leo_mesh.rules import Kind, Model


class Phase(enum.Enum):
    """Where a PENDING generation is on its way to a result."""

    QUEUED = "QUEUED"  # in the mesh's queue
    STARTING = "STARTING"  # sent to a worker, not acknowledged yet
    HELD = "HELD"  # taken by a worker, waiting there for a free slot (prefetch)
    RUNNING = "RUNNING"  # running on a worker


ON_A_WORKER = frozenset({Phase.STARTING, Phase.HELD, Phase.RUNNING})


class ShownPhase(enum.Enum):
    """The phase a client sees: a generation a worker holds for its next
    free slot is as good as starting."""

    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"


def shown_phase(phase: Phase) -> ShownPhase:
    return ShownPhase.STARTING if phase is Phase.HELD else ShownPhase(phase.value)


@dataclass(frozen=True)
class Standing:
    """Where a PENDING generation stands in the queue, as a client sees it:
    its place while queued, and when it should start and complete."""

    position: int | None = None
    start: datetime | None = None
    complete: datetime | None = None


class Priority(enum.IntEnum):
    LOW = 0
    NORMAL = 1
    HIGH = 2


def priority_allowed(asked: Priority, key_allows: Priority) -> bool:
    """A create may ask for any priority up to what its API key allows."""
    return asked <= key_allows


# A class's weight multiplies its lanes' weights: with backlogs in every
# class, HIGH gets 16 turns for NORMAL's 4 and LOW's 1.
CLASS_WEIGHTS = {Priority.LOW: 1, Priority.NORMAL: 4, Priority.HIGH: 16}


# --- tags, when generations are created ---


LaneKey = tuple[str, Priority]  # (owner, priority)


@dataclass(frozen=True)
class Arrival:
    """A generation entering the queue: whose, in which class, weighing what."""

    owner: str
    priority: Priority
    weight: int  # the key's weight (its tier), at least 1
    cost: float  # its expected duration in seconds (the queue's unit of work)


def tags(
    arrivals: Sequence[Arrival], lanes: Mapping[LaneKey, float], virtual_time: float
) -> tuple[list[float], dict[LaneKey, float]]:
    """The start tag of each arrival, in order, and each lane's finish after
    them (only the lanes they touched). Several arrivals of one lane queue
    one behind the other."""
    finishes: dict[LaneKey, float] = {}
    started: list[float] = []
    for arrival in arrivals:
        lane = (arrival.owner, arrival.priority)
        start = max(finishes.get(lane, lanes.get(lane, 0.0)), virtual_time)
        started.append(start)
        finishes[lane] = start + arrival.cost / (max(1, arrival.weight) * CLASS_WEIGHTS[arrival.priority])
    return started, finishes


# --- assignment, when slots are free ---


@dataclass(frozen=True)
class Worker:
    """A live worker as the queue sees it: what it serves and how full it is."""

    id: uuid.UUID
    slots: int
    prefetch: int
    models: frozenset[Model]
    kinds: frozenset[Kind]
    holding: int  # generations on it now (starting, held or running)

    def serves(self, model: Model, kind: Kind) -> bool:
        return model in self.models and kind in self.kinds


@dataclass(frozen=True)
class Candidate:
    """A queued generation that is due, in the queue's order."""

    row_id: uuid.UUID
    owner: str
    model: Model
    kind: Kind
    tag: float


@dataclass(frozen=True)
class Assignment:
    candidate: Candidate
    worker_id: uuid.UUID
    runs_at_once: bool  # into a free slot (False: the worker's prefetch)


def assign(
    candidates: Iterable[Candidate],
    workers: Iterable[Worker],
    on_workers_by_owner: Mapping[str, int],
    max_running_per_owner: int,
    limit: int | None = None,
) -> list[Assignment]:
    """Hand out candidates, in their order, to workers with room: at most
    `limit` of them (None: all that fit).

    A candidate is passed over only when its owner already has
    `max_running_per_owner` generations on workers, or no worker that serves
    its model and kind has room; the ones after it still get their turn. A
    free slot is filled before any worker's prefetch: a candidate goes to the
    serving worker with the most free slots (then the most room, then the
    lowest id, so the choice is deterministic). No candidate is looked at
    once `limit` are handed out or no worker has room left.
    """
    holding = {worker.id: worker.holding for worker in workers}
    pool = {worker.id: worker for worker in workers}
    owners = dict(on_workers_by_owner)
    made: list[Assignment] = []
    room_left = sum(max(0, worker.slots + worker.prefetch - worker.holding) for worker in pool.values())
    if room_left == 0 or limit == 0:
        return made
    for candidate in candidates:
        if owners.get(candidate.owner, 0) >= max_running_per_owner:
            continue
        room = [
            worker
            for worker in pool.values()
            if worker.serves(candidate.model, candidate.kind) and holding[worker.id] < worker.slots + worker.prefetch
        ]
        if not room:
            continue
        chosen = min(
            room,
            key=lambda w: (-(w.slots - holding[w.id]), -(w.slots + w.prefetch - holding[w.id]), w.id),
        )
        made.append(Assignment(candidate, chosen.id, runs_at_once=holding[chosen.id] < chosen.slots))
        holding[chosen.id] += 1
        owners[candidate.owner] = owners.get(candidate.owner, 0) + 1
        room_left -= 1
        if room_left == 0 or len(made) == limit:
            break
    return made


def virtual_time_after(virtual_time: float, handed_out: Iterable[float]) -> float:
    """The queue's virtual time once generations with these tags left it."""
    return max([virtual_time, *handed_out])


# Refusals by a worker that say only that it had no room or is leaving (the
# ErrorInfo reasons of leo_mesh.status): the generation goes back to the
# queue at once and the attempt does not count; a busy pool never fails a
# generation.
NOT_COUNTED_REFUSALS = frozenset({"WORKER_FULL", "WORKER_DRAINING", "WRONG_WORKER"})


def counts_as_attempt(reason: str | None) -> bool:
    return reason not in NOT_COUNTED_REFUSALS


# --- where a waiting generation stands ---


@dataclass(frozen=True)
class Waiting:
    """A queued generation, as positions and estimates need it."""

    row_id: uuid.UUID
    tag: float
    created: float  # seconds since the epoch (or any clock shared by all)
    priority: Priority
    model: Model = Model.SDXL
    kind: Kind = Kind.IMAGE

    def order(self) -> tuple[float, int, float, uuid.UUID]:
        """The queue's order: by tag; on a tie, the higher class, then the older."""
        return (self.tag, -self.priority, self.created, self.row_id)


def positions(waiting: Iterable[Waiting]) -> dict[uuid.UUID, int]:
    """Each queued generation's place: 1 + the generations that leave the
    queue before it and were already waiting when it was created, or are of
    a higher class.

    So a place never grows as the queue moves (generations leave from the
    front, or are cancelled anywhere) nor when a generation of the same or a
    lower class arrives, even one that fair share puts in front (a newcomer
    delays the estimated start instead); it grows only when a higher class
    arrives in front. Two generations may share a place: a newcomer served
    before an older one does not count against it, nor it against the newcomer.
    """
    ordered = sorted(waiting, key=Waiting.order)
    # Creation times seen so far in queue order, per class: how many of
    # those ahead were created earlier is a bisection.
    seen: dict[Priority, list[float]] = {priority: [] for priority in Priority}
    places: dict[uuid.UUID, int] = {}
    for item in ordered:
        earlier = sum(bisect.bisect_left(created, item.created) for created in seen.values())
        # Ahead, created later, but of a higher class: they count too.
        higher = sum(
            len(created) - bisect.bisect_left(created, item.created)
            for priority, created in seen.items()
            if priority > item.priority
        )
        places[item.row_id] = 1 + earlier + higher
        bisect.insort(seen[item.priority], item.created)
    return places


@dataclass(frozen=True)
class Pool:
    """The slots serving one (model, kind): how many, and when each frees
    (seconds from now: 0 for an idle slot, a running job's expected rest)."""

    frees_in: tuple[float, ...]


def estimated_starts(
    waiting: Iterable[Waiting], pools: Mapping[tuple[Model, Kind], Pool], durations: Mapping[tuple[Model, Kind], float]
) -> dict[uuid.UUID, float]:
    """Seconds from now until each queued generation should start: the queue
    played forward in its order, each generation taking the slot of its
    (model, kind) that frees first and holding it for that pair's usual
    duration. A pair no live worker serves has no estimate."""
    clocks = {pair: list(pool.frees_in) for pair, pool in pools.items() if pool.frees_in}
    for frees in clocks.values():
        heapq.heapify(frees)
    starts: dict[uuid.UUID, float] = {}
    for item in sorted(waiting, key=Waiting.order):
        pair = (item.model, item.kind)
        slots = clocks.get(pair)
        if slots is None:
            continue
        start = max(0.0, heapq.heappop(slots))
        starts[item.row_id] = start
        heapq.heappush(slots, start + durations[pair])
    return starts


@dataclass(frozen=True)
class Serving:
    """A live worker, for the estimates: what it serves and, for each
    generation on it, how long that one should still take (seconds)."""

    slots: int
    models: frozenset[Model]
    kinds: frozenset[Kind]
    rests: tuple[float, ...] = ()


def pools(workers: Iterable[Serving]) -> dict[tuple[Model, Kind], Pool]:
    """The slots serving each (model, kind), and when each frees: a worker's
    slots free as its soonest-ending generations end (idle ones at once). A
    worker serving several pairs counts in each: the estimates are rough
    where workers are shared."""
    frees: dict[tuple[Model, Kind], list[float]] = {}
    for worker in workers:
        ending = sorted(max(0.0, rest) for rest in worker.rests)[: worker.slots]
        slots = ending + [0.0] * (worker.slots - len(ending))
        for model in worker.models:
            for kind in worker.kinds:
                frees.setdefault((model, kind), []).extend(slots)
    return {pair: Pool(tuple(sorted(times))) for pair, times in frees.items()}


# --- which workers are gone ---


@dataclass(frozen=True)
class Lease:
    """A worker's lease: its latest heartbeat, until when that keeps it in
    the pool, and since when it has kept its lease without a break."""

    worker_id: uuid.UUID
    heartbeat_at: datetime
    expires_at: datetime
    alive_since: datetime


def gone(leases: Iterable[Lease], now: datetime, lease_s: float) -> list[uuid.UUID]:
    """The workers that are gone: their lease ended, and a heartbeat of
    another worker arrived after that, from a worker that was in the pool
    before it ended or has been for a whole lease since. So heartbeats were
    seen to arrive while this one sent none. When every lease ends together
    (the heartbeats' path, the callback server, failed, not the workers),
    none is gone: they keep their jobs, whose results count when it is back,
    and nothing could run them elsewhere meanwhile. Workers back from such
    an outage one after the other are not taken for gone either, as long as
    each is back within a lease of the first."""
    leases = list(leases)
    live = [lease for lease in leases if lease.expires_at >= now]
    steady_since = now.timestamp() - lease_s

    def witnessed(silent: Lease) -> bool:
        return any(
            w.heartbeat_at > silent.expires_at
            and (w.alive_since <= silent.expires_at or w.alive_since.timestamp() <= steady_since)
            for w in live
        )

    return [lease.worker_id for lease in leases if lease.expires_at < now and witnessed(lease)]


# --- what a worker's heartbeat says about the generations it holds ---


@dataclass(frozen=True)
class Held:
    """What the mesh has on record for a generation assigned to the worker."""

    phase: Phase
    # The worker's heartbeat number when it took the generation (None: not
    # acknowledged yet, i.e. STARTING).
    taken_at: int | None


@dataclass(frozen=True)
class Reported:
    """What the worker says of a generation it holds."""

    running: bool  # running in a slot (else waiting there for one)
    running_for_s: float = 0.0


@dataclass(frozen=True)
class Reconciliation:
    drop: frozenset[uuid.UUID] = frozenset()  # the worker must stop these: not its own (any more)
    started: Mapping[uuid.UUID, float] = field(default_factory=dict)  # now running, for this many seconds
    taken: frozenset[uuid.UUID] = frozenset()  # it holds them, though its acknowledgement was lost
    lost: frozenset[uuid.UUID] = frozenset()  # it took them but holds them no more: back to the queue


def reconcile(
    assigned: Mapping[uuid.UUID, Held], reported: Mapping[uuid.UUID, Reported], heartbeat: int
) -> Reconciliation:
    """Compare a heartbeat (number `heartbeat`, counting up per worker) with
    the generations assigned to the worker that sent it.

    What it holds but is not assigned to it (cancelled, finished, or given
    to another worker since) it must drop. What is assigned to it is its
    own, whatever token it holds: a newer dispatch's token reaches it with
    the start that carries it. A generation counts as lost only if the
    worker took it before this heartbeat was made, so a start acknowledged
    after the heartbeat left the worker is never mistaken for a lost one.
    """
    drop = frozenset(gid for gid in reported if gid not in assigned)
    started = {
        gid: report.running_for_s
        for gid, report in reported.items()
        if gid in assigned and report.running and assigned[gid].phase is not Phase.RUNNING
    }
    taken = frozenset(
        gid
        for gid, report in reported.items()
        if gid in assigned and not report.running and assigned[gid].phase is Phase.STARTING
    )
    lost = frozenset(
        gid
        for gid, held in assigned.items()
        if gid not in reported and held.taken_at is not None and held.taken_at < heartbeat
    )
    return Reconciliation(drop, started, taken, lost)
