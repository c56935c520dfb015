"""WatchGeneration: a generation's state now, then each committed change.

Every change of a generation a client can see commits with a NOTIFY carrying
its id (GenerationStore). Each api_server process holds one LISTEN
connection (ChangeFeed). Watches keeps one Topic per watched generation:
on a notification the generation is read once, whatever the number of its
watchers in this process, and the state is handed to each of them. A
watcher that cannot keep up is dropped (Watches.follow), never waited for.
Revoking an API key (KeyStore.revoke) ends its open watches (a watch opened
with a signed link has no key: it lasts until the generation is final).
Each message carries its state's event id, and a watch resumed after one
skips that state (api_server.watch_events). When the queue moves
(QUEUE_CHANNEL), the places and estimates of the watched generations are
taken again (QueueView) and handed out the same way, at most once per
QUEUE_SNAPSHOT_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import grpc
import psycopg
from psycopg.conninfo import make_conninfo

from api_server import watch_events
from api_server.queue_view import QueueView
from leo.generation.v1 import generation_pb2
from leo_mesh import metrics
from leo_mesh.backoff import backoff_delay
from leo_mesh.convert import to_proto
from leo_mesh.db.generations import GenerationStore
from leo_mesh.db.keys import REVOKED_CHANNEL
from leo_mesh.db.notify import CHANGES_CHANNEL, QUEUE_CHANNEL
from leo_mesh.db.rows import GenerationRow
from leo_mesh.errors import ApiKeyRevoked, DomainError, GenerationNotFound, ShuttingDown, WatcherTooSlow
from leo_mesh.media.links import AssetLinks
from leo_mesh.rules import FINAL, Status
from leo_mesh.scheduling import Phase
from leo_mesh.status import status_proto

log = logging.getLogger("api_server.watch")

# How the LISTEN connection shows in pg_stat_activity.
APPLICATION_NAME = "leo-listen"
# libpq TCP keepalives: a silently dead LISTEN connection is noticed
# (and replaced) within about idle + interval * count seconds.
KEEPALIVES = "keepalives=1 keepalives_idle=10 keepalives_interval=5 keepalives_count=3"
CONNECT_TIMEOUT_S = 5
# Generations read in one statement when many changed at once.
READ_BATCH = 500
# Pause before reading again after a failed read.
READ_RETRY_S = 0.5


@dataclass
class FeedListeners:
    """Who the change feed tells: a generation changed, a key was revoked,
    the queue moved (or a worker's room changed), or anything may have been
    missed (the connection was (re)opened)."""

    changed: Callable[[str], None] = lambda generation_id: None
    revoked: Callable[[str], None] = lambda key_hash_hex: None
    queue_moved: Callable[[], None] = lambda: None
    resync: Callable[[], None] = lambda: None


class ChangeFeed:
    """The process's LISTEN connection (a plain psycopg connection, never a
    pooled one: it stays in LISTEN for the life of the process). When it
    drops it is replaced, and the listeners are told to resync."""

    def __init__(self, conninfo: str, *, reconnect_base_s: float, reconnect_cap_s: float) -> None:
        self._conninfo = conninfo
        self._reconnect_base_s = reconnect_base_s
        self._reconnect_cap_s = reconnect_cap_s
        self.listeners = FeedListeners()

    async def run(self) -> None:
        """Listen until cancelled; a dropped connection or a database outage only pauses delivery."""
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    make_conninfo(self._conninfo, application_name=APPLICATION_NAME, connect_timeout=CONNECT_TIMEOUT_S)
                    + " "
                    + KEEPALIVES,
                    autocommit=True,
                ) as conn:
                    await conn.execute(f"LISTEN {CHANGES_CHANNEL}; LISTEN {REVOKED_CHANNEL}; LISTEN {QUEUE_CHANNEL}")
                    if failures:
                        log.info("change feed reconnected")
                    failures = 0
                    # Whatever committed while nobody listened is read now.
                    self.listeners.resync()
                    async for notify in conn.notifies():
                        if notify.channel == CHANGES_CHANNEL:
                            self.listeners.changed(notify.payload)
                        elif notify.channel == QUEUE_CHANNEL:
                            self.listeners.queue_moved()
                        else:
                            self.listeners.revoked(notify.payload)
            except Exception as exc:  # whatever broke it, listen again
                failures += 1
                delay = backoff_delay(failures, base_s=self._reconnect_base_s, cap_s=self._reconnect_cap_s)
                log.warning(
                    "change feed disconnected",
                    extra={"error": str(exc).strip(), "attempt": failures, "retry_in_s": round(delay, 3)},
                )
                await asyncio.sleep(delay)


@dataclass(eq=False)
class Watcher:
    # None: opened with a signed link, which no key revocation ends.
    key_hash_hex: str | None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    ended_by: DomainError | None = None


@dataclass(eq=False)
class Topic:
    """One watched generation: its latest state read, and who wants it."""

    watchers: set[Watcher] = field(default_factory=set)
    row: GenerationRow | None = None
    # How many reads were published (0: not read yet).
    version: int = 0


class Watches:
    def __init__(
        self,
        store: GenerationStore,
        view: QueueView,
        *,
        write_timeout_s: float,
        links: AssetLinks,
        places_every_s: float,
    ) -> None:
        self._store = store
        self._view = view
        self._links = links
        self._write_timeout_s = write_timeout_s
        self._places_every_s = places_every_s
        self._topics: dict[uuid.UUID, Topic] = {}
        self._by_key: dict[str, set[Watcher]] = {}
        self._to_read: set[uuid.UUID] = set()
        self._read_wanted = asyncio.Event()
        self._places_wanted = asyncio.Event()
        self._draining = False

    def __len__(self) -> int:
        """Open watch streams."""
        return sum(len(topic.watchers) for topic in self._topics.values())

    # --- what the change feed tells ---

    def changed(self, generation_id: str) -> None:
        with contextlib.suppress(ValueError):
            self._want_read(uuid.UUID(generation_id))

    def resync(self) -> None:
        for generation_id in self._topics:
            self._want_read(generation_id)

    def queue_moved(self) -> None:
        self._view.stale()
        self._places_wanted.set()

    def revoked(self, key_hash_hex: str) -> None:
        for watcher in self._by_key.get(key_hash_hex, ()):
            watcher.ended_by = ApiKeyRevoked()
            watcher.wake.set()

    def drain(self) -> None:
        """End every stream (the server is shutting down): each sends the
        state it has not sent yet, then ends UNAVAILABLE so its client
        watches again, on another replica."""
        self._draining = True
        for topic in self._topics.values():
            for watcher in topic.watchers:
                watcher.ended_by = ShuttingDown("watch again to resume")
                watcher.wake.set()

    # --- reading ---

    def _want_read(self, generation_id: uuid.UUID) -> None:
        if generation_id in self._topics:
            self._to_read.add(generation_id)
            self._read_wanted.set()

    async def run(self) -> None:
        """Read the generations that changed, in batches, and hand each state
        to its watchers. A failed read is retried; it never ends the loop."""
        while True:
            await self._read_wanted.wait()
            self._read_wanted.clear()
            while self._to_read:
                batch = [self._to_read.pop() for _ in range(min(READ_BATCH, len(self._to_read)))]
                try:
                    rows = {row.generation_id: row for row in await self._store.get_any(batch)}
                except Exception as exc:
                    log.warning("watch read failed; retrying", extra={"error": str(exc), "generations": len(batch)})
                    self._to_read.update(batch)
                    await asyncio.sleep(READ_RETRY_S)
                    continue
                if any(row.phase is Phase.QUEUED for row in rows.values()):
                    with contextlib.suppress(Exception):  # places are shown when they can be
                        await self._view.fresh()
                for generation_id in batch:
                    self._publish(generation_id, rows.get(generation_id))

    async def run_places(self) -> None:
        """When the queue moved, hand the watched PENDING generations their
        new places and estimates (each watcher sends only what changed)."""
        while True:
            await self._places_wanted.wait()
            self._places_wanted.clear()
            pending = [
                (generation_id, topic)
                for generation_id, topic in self._topics.items()
                if topic.row is not None and topic.row.phase is not None
            ]
            if pending:
                try:
                    await self._view.fresh()
                except Exception as exc:
                    log.warning("queue places not read; retrying", extra={"error": str(exc)})
                    self._places_wanted.set()
                else:
                    for generation_id, topic in pending:
                        self._publish(generation_id, topic.row)
            await asyncio.sleep(self._places_every_s)

    def _publish(self, generation_id: uuid.UUID, row: GenerationRow | None) -> None:
        topic = self._topics.get(generation_id)
        if topic is None:
            return
        topic.row = row
        topic.version += 1
        for watcher in topic.watchers:
            watcher.wake.set()

    @contextlib.contextmanager
    def _subscribed(self, generation_id: uuid.UUID, watcher: Watcher) -> Iterator[Topic]:
        topic = self._topics.get(generation_id)
        if topic is None:
            topic = self._topics[generation_id] = Topic()
            self._want_read(generation_id)
        topic.watchers.add(watcher)
        if watcher.key_hash_hex is not None:
            self._by_key.setdefault(watcher.key_hash_hex, set()).add(watcher)
        metrics.WATCHES_OPEN.inc()
        try:
            yield topic
        finally:
            metrics.WATCHES_OPEN.dec()
            topic.watchers.discard(watcher)
            if not topic.watchers:
                del self._topics[generation_id]
                self._to_read.discard(generation_id)
            if watcher.key_hash_hex is not None:
                same_key = self._by_key[watcher.key_hash_hex]
                same_key.discard(watcher)
                if not same_key:
                    del self._by_key[watcher.key_hash_hex]

    # --- one stream ---

    async def follow(
        self,
        generation_id: uuid.UUID,
        owner: str | None,
        key_hash: bytes | None,
        context: grpc.aio.ServicerContext,
        *,
        after: str | None = None,
    ) -> AsyncIterator[generation_pb2.WatchGenerationResponse]:
        """The owner's generation now, then on each change, ending with its
        final state; NOT_FOUND if the owner has no such generation. Without
        an owner and key (a signed link), any generation. `after`: the event
        id of the state the client has; that state is not sent again, and
        if it was final the watch ends at once (watch_events.ENDED_HEADER)."""
        if self._draining:
            raise ShuttingDown("watch again to resume")
        watcher = Watcher(key_hash.hex() if key_hash is not None else None)
        with self._subscribed(generation_id, watcher) as topic:
            sent = None
            seen = 0
            while True:
                if topic.version > seen:
                    seen, row = topic.version, topic.row
                    if row is None or (owner is not None and row.owner != owner):
                        raise GenerationNotFound(generation_id)
                    generation = to_proto(
                        row, self._links, self._view.standing(row) if row.status is Status.PENDING else None
                    )
                    if generation != sent:
                        message = watch_events.event(generation)
                        if message.event_id == after and row.status in FINAL:
                            await context.send_initial_metadata(((watch_events.ENDED_HEADER, "true"),))
                            return
                        if message.event_id != after:
                            with self._write_deadline(context):
                                yield message
                        else:
                            # Nothing new to send yet: open the stream anyway
                            # (a proxy's client sees it open once headers come).
                            await context.send_initial_metadata(())
                        sent, after = generation, None
                    if row.status in FINAL:
                        return
                if watcher.ended_by is not None:
                    raise watcher.ended_by
                watcher.wake.clear()
                if topic.version == seen:
                    await watcher.wake.wait()

    @contextlib.contextmanager
    def _write_deadline(self, context: grpc.aio.ServicerContext) -> Iterator[None]:
        """Drop the stream if the message yielded inside is not written in time.

        gRPC writes a yielded message in the task that iterates this
        generator and resumes it once the write completes; a peer that
        grants no flow-control window never lets it complete. Cancelling that
        task ends the call here: the generator is closed and unsubscribed.
        """
        task = asyncio.current_task()
        assert task is not None

        def drop() -> None:
            status = status_proto(WatcherTooSlow(self._write_timeout_s))
            context.set_code(grpc.StatusCode.DEADLINE_EXCEEDED)
            context.set_details(status.message)
            context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            log.warning("slow watcher dropped", extra={"peer": context.peer(), "timeout_s": self._write_timeout_s})
            task.cancel()

        timer = asyncio.get_running_loop().call_later(self._write_timeout_s, drop)
        try:
            yield
        finally:
            timer.cancel()
