"""Where queued generations stand: their places and estimated start and
completion times, the same on every replica (all computed from the
database: leo_mesh.scheduling over QueueStore.snapshot).

One picture of the queue is kept per process and shared by every read: it
is taken again when a read finds it older than `QUEUE_SNAPSHOT_S`, or when
the queue moved (QUEUE_CHANNEL) and someone watches a queued generation.
How long a generation takes is the median of its model and kind's recent
results (the last RECENT_S), refreshed every DURATIONS_S; without recent
results, `QUEUE_DEFAULT_DURATION_S`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from leo_mesh import scheduling
from leo_mesh.db.queue import QueueStore, Snapshot
from leo_mesh.db.rows import GenerationRow
from leo_mesh.rules import Kind, Model, Status
from leo_mesh.scheduling import Phase, Standing

RECENT_S = 900.0
DURATIONS_S = 10.0


@dataclass
class _Picture:
    taken_at: float  # time.monotonic() when taken
    at: datetime  # the database's clock then
    places: dict[uuid.UUID, int] = field(default_factory=dict)
    starts: dict[uuid.UUID, float] = field(default_factory=dict)


class QueueView:
    def __init__(self, queue: QueueStore, *, max_age_s: float, default_duration_s: float) -> None:
        self._queue = queue
        self._max_age_s = max_age_s
        self._default_duration_s = default_duration_s
        self._durations: dict[tuple[Model, Kind], float] = {}
        self._durations_at = -DURATIONS_S
        self._picture: _Picture | None = None
        self._taking: asyncio.Task[_Picture] | None = None

    def duration(self, model: Model, kind: Kind) -> float:
        """How long a generation of this model and kind usually takes (seconds)."""
        return self._durations.get((model, kind), self._default_duration_s)

    async def standings(self, rows: Iterable[GenerationRow]) -> dict[uuid.UUID, Standing]:
        """Where each PENDING generation among `rows` stands, from a picture
        no older than `max_age_s` (taken now if it is, and one is needed)."""
        pending = [row for row in rows if row.status is Status.PENDING]
        queued = [row.generation_id for row in pending if row.phase is Phase.QUEUED]
        if queued:
            await self.fresh(queued)
        return {row.generation_id: self.standing(row) for row in pending}

    def standing(self, row: GenerationRow) -> Standing:
        """Where a PENDING generation stands in the latest picture (no I/O).
        Times are whole seconds and move only with a new picture, so a
        watcher is not sent a new state for nothing."""
        duration = timedelta(seconds=self.duration(row.model, row.kind))
        picture = self._picture
        if row.phase is Phase.RUNNING and row.started_at is not None:
            return Standing(complete=_second(row.started_at + duration))
        if picture is None:
            return Standing()
        if row.phase is not Phase.QUEUED:  # on a worker, about to run
            return Standing(complete=_second(picture.at + duration))
        if row.generation_id not in picture.places:
            return Standing()
        wait = picture.starts.get(row.generation_id)
        start = _second(picture.at + timedelta(seconds=wait)) if wait is not None else None
        return Standing(picture.places[row.generation_id], start, start + duration if start else None)

    def stale(self) -> None:
        """The queue moved: the next read takes a new picture."""
        if self._picture is not None:
            self._picture.taken_at = -self._max_age_s

    async def fresh(self, queued: Iterable[uuid.UUID] = ()) -> None:
        """Make sure the picture is no older than `max_age_s` and shows these
        queued generations (made after it was taken); reads that arrive
        while one is being taken share it."""
        picture = self._picture
        if (
            picture is not None
            and time.monotonic() - picture.taken_at <= self._max_age_s
            and all(generation_id in picture.places for generation_id in queued)
        ):
            return
        if self._taking is None:
            self._taking = asyncio.ensure_future(self._take())
            self._taking.add_done_callback(lambda _: setattr(self, "_taking", None))
        self._picture = await asyncio.shield(self._taking)

    async def _take(self) -> _Picture:
        taken_at = time.monotonic()
        if taken_at - self._durations_at > DURATIONS_S:
            self._durations = await self._queue.recent_durations(RECENT_S)
            self._durations_at = taken_at
        snapshot = await self._queue.snapshot()
        return _Picture(
            taken_at,
            datetime.fromtimestamp(snapshot.taken_at, UTC),
            scheduling.positions(snapshot.waiting),
            scheduling.estimated_starts(snapshot.waiting, self._pools(snapshot), self._all_durations(snapshot)),
        )

    def _all_durations(self, snapshot: Snapshot) -> Mapping[tuple[Model, Kind], float]:
        pairs = {(item.model, item.kind) for item in snapshot.waiting}
        return {pair: self.duration(*pair) for pair in pairs}

    def _pools(self, snapshot: Snapshot) -> dict[tuple[Model, Kind], scheduling.Pool]:
        rests: dict[uuid.UUID, list[float]] = {}
        for worker_id, model, kind, ran in snapshot.held:
            rests.setdefault(worker_id, []).append(self.duration(model, kind) - ran)
        return scheduling.pools(
            scheduling.Serving(
                slots, frozenset(map(Model, models)), frozenset(map(Kind, kinds)), tuple(rests.get(worker_id, ()))
            )
            for worker_id, (slots, models, kinds) in snapshot.workers.items()
        )


def _second(moment: datetime) -> datetime:
    """Rounded to the second."""
    return (moment + timedelta(microseconds=500_000)).replace(microsecond=0)
