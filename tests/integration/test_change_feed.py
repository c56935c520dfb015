"""The change feed in process: a database it cannot reach only delays it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import psycopg

from api_server.watch import ChangeFeed, FeedListeners
from leo_mesh.db.notify import CHANGES_CHANNEL
from leo_mesh.db.urls import libpq_url


async def test_the_listener_waits_out_a_database_it_cannot_reach(postgres, caplog):
    """In process: the feed keeps retrying, logging each failure, until the
    database exists; then it asks for every watcher to be re-read and passes
    notifications on."""
    name = f"later_{uuid.uuid4().hex[:12]}"
    feed = ChangeFeed(libpq_url(postgres.url(name)), reconnect_base_s=0.05, reconnect_cap_s=0.1)
    generation_id = uuid.uuid4()
    resynced, changed = asyncio.Event(), asyncio.Queue()
    feed.listeners = FeedListeners(changed=changed.put_nowait, resync=resynced.set)
    caplog.set_level(logging.WARNING, logger="api_server.watch")
    listening = asyncio.create_task(feed.run())
    try:
        while sum(r.getMessage() == "change feed disconnected" for r in caplog.records) < 3:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(postgres.create_database, name)
        await asyncio.wait_for(resynced.wait(), timeout=10)  # connected: re-read everything
        async with await psycopg.AsyncConnection.connect(postgres.url(name), autocommit=True) as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANGES_CHANNEL, str(generation_id)))
        assert await asyncio.wait_for(changed.get(), timeout=10) == str(generation_id)
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
