"""WatchGeneration: a generation's state now, then each committed change.

Every change of a generation commits with a NOTIFY carrying only its id
(GenerationStore). Each api_server process holds one dedicated LISTEN
connection (ChangeFeed) and marks the watchers of that id dirty; a watcher
then re-reads the committed row and sends it if it changed. Nothing is
queued per watcher: a burst of changes costs one read, and a watcher that
cannot keep up is dropped (Watches.follow), never waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import psycopg
from leo.generation.v1 import generation_pb2

from api_server.backoff import backoff_delay
from leo_mesh.convert import to_proto
from leo_mesh.db.generations import CHANGES_CHANNEL, GenerationStore
from leo_mesh.db.models import FINAL_STATUSES
from leo_mesh.status import RpcError, not_found

log = logging.getLogger("api_server.watch")

# How the LISTEN connection shows in pg_stat_activity.
APPLICATION_NAME = "leo-listen"
# libpq TCP keepalives: a silently dead LISTEN connection is noticed
# (and replaced) within about idle + interval * count seconds.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
CONNECT_TIMEOUT_S = 5


class ChangeFeed:
    """The process's LISTEN connection, fanned out to its watchers.

    A plain psycopg connection, never a pooled one: it stays in LISTEN for
    the life of the process. When it drops it is replaced, and every watched
    generation is marked dirty so that changes committed meanwhile are read.
    """

    def __init__(self, conninfo: str, *, reconnect_base_s: float, reconnect_cap_s: float) -> None:
        self._conninfo = conninfo
        self._reconnect_base_s = reconnect_base_s
        self._reconnect_cap_s = reconnect_cap_s
        self._watchers: dict[str, set[asyncio.Event]] = {}

    @contextlib.contextmanager
    def subscribe(self, generation_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set whenever the generation may have changed."""
        key = str(generation_id)
        dirty = asyncio.Event()
        self._watchers.setdefault(key, set()).add(dirty)
        try:
            yield dirty
        finally:
            watchers = self._watchers[key]
            watchers.discard(dirty)
            if not watchers:
                del self._watchers[key]

    def _mark(self, key: str) -> None:
        for dirty in self._watchers.get(key, ()):
            dirty.set()

    def mark_all(self) -> None:
        for watchers in self._watchers.values():
            for dirty in watchers:
                dirty.set()

    async def run(self) -> None:
        """Listen until cancelled; a dropped connection or a database
        outage only pauses delivery."""
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo,
                    autocommit=True,
                    application_name=APPLICATION_NAME,
                    connect_timeout=CONNECT_TIMEOUT_S,
                    **KEEPALIVES,
                ) as conn:
                    await conn.execute(f"LISTEN {CHANGES_CHANNEL}")
                    if failures:
                        log.info("change feed reconnected", extra={"generations_watched": len(self._watchers)})
                    failures = 0
                    # Whatever committed while nobody listened is read now.
                    self.mark_all()
                    async for notify in conn.notifies():
                        self._mark(notify.payload)
            except Exception as exc:  # whatever broke it, listen again
                failures += 1
                delay = backoff_delay(failures, base_s=self._reconnect_base_s, cap_s=self._reconnect_cap_s)
                log.warning(
                    "change feed disconnected",
                    extra={"error": str(exc).strip(), "attempt": failures, "retry_in_s": round(delay, 3)},
                )
                await asyncio.sleep(delay)


class Watches:
    """What one WatchGeneration stream sends."""

    def __init__(self, store: GenerationStore, feed: ChangeFeed, *, write_timeout_s: float, max_reads: int) -> None:
        self._store = store
        self._feed = feed
        self._write_timeout_s = write_timeout_s
        # Many watchers woken at once (a reconnect wakes all) queue here, not
        # for the connection pool, which stays free for the other calls.
        self._reads = asyncio.Semaphore(max_reads)
        self._draining = False

    def drain(self) -> None:
        """End every stream (the server is shutting down): each sends the
        state it has not sent yet, then ends UNAVAILABLE so its client
        watches again, on another replica."""
        self._draining = True
        self._feed.mark_all()

    async def follow(
        self, generation_id: uuid.UUID, owner: str, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[generation_pb2.WatchGenerationResponse]:
        """The owner's generation now, then on each change, ending with its
        final state; NOT_FOUND if the owner has no such generation."""
        # Subscribed before the first read, so no change slips in between.
        with self._feed.subscribe(generation_id) as dirty:
            sent = None
            while True:
                dirty.clear()
                async with self._reads:
                    row = await self._store.get(generation_id, owner)
                if row is None:
                    raise not_found(f"generation {generation_id}")
                generation = to_proto(row)
                if generation != sent:
                    with self._write_deadline(context):
                        yield generation_pb2.WatchGenerationResponse(generation=generation)
                    sent = generation
                if row.status in FINAL_STATUSES:
                    return
                if self._draining:
                    raise RpcError(grpc.StatusCode.UNAVAILABLE, "the server is shutting down; watch again to resume")
                await dirty.wait()

    @contextlib.contextmanager
    def _write_deadline(self, context: grpc.aio.ServicerContext) -> Iterator[None]:
        """Drop the stream if the message yielded inside is not written in time.

        gRPC writes a yielded message in the task that iterates this
        generator and resumes it once the write completes; a peer that
        grants no flow-control window never lets it complete. Cancelling that
        task ends the call here: the generator is closed and unsubscribed.
        """
        task = asyncio.current_task()

        def drop() -> None:
            context.set_code(grpc.StatusCode.DEADLINE_EXCEEDED)
            context.set_details(f"watcher dropped: a message was not written within {self._write_timeout_s} s")
            log.warning("slow watcher dropped", extra={"peer": context.peer(), "timeout_s": self._write_timeout_s})
            task.cancel()

        timer = asyncio.get_running_loop().call_later(self._write_timeout_s, drop)
        try:
            yield
        finally:
            timer.cancel()
