"""Following a generation when the api_server restarts or stays away while
the SDK waits. A real api_server runs in this event loop on real PostgreSQL
(on a port of its own, so it can come back on it); the test plays the AI
through the store and the callback server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest

from devstack.ports import free_port
from leo_client import AsyncClient, ConnectionLost, Reconnected, Reconnecting, Status, Unavailable
from leo_mesh.db.keys import KeyStore
from tests.inprocess import api_server
from tests.integration.ai_side import OWNER, completed, dispatched

# Guards against a hang, never a measure: every wait below ends on an event.
PATIENCE_S = 60


async def until(condition: Callable[[], object]) -> None:
    async with asyncio.timeout(PATIENCE_S):
        while not condition():
            await asyncio.sleep(0.02)


async def complete(callbacks, generation_id, token: str) -> None:
    await callbacks.CompleteGeneration(completed(generation_id, token, "0.png"), timeout=5)


# --- the api_server restarts, or stays away ------------------------------------


async def test_the_asyncio_client_reconnects_and_says_so(database_url, db, store, callbacks):
    port = free_port()
    generation_id, token = await dispatched(store, "asyncio outlives its api_server")
    states, events = [], []
    async with (
        AsyncClient(f"127.0.0.1:{port}", await KeyStore(db).create(OWNER)) as client,
        contextlib.AsyncExitStack() as first_api,
    ):
        await first_api.enter_async_context(api_server(database_url, api_server_port=port))
        waiting = asyncio.create_task(
            client.wait(str(generation_id), on_update=states.append, on_connection=events.append)
        )
        await until(lambda: states)
        await first_api.aclose()
        await until(lambda: events)
        async with api_server(database_url, api_server_port=port):
            await until(lambda: isinstance(events[-1], Reconnected))
            await complete(callbacks, generation_id, token)
            done = await waiting
    assert done.status is Status.COMPLETE and states[-1] == done
    first, *_, back = events
    assert isinstance(first, Reconnecting) and first.attempt == 1 and isinstance(first.error, Unavailable)
    assert "shutting down" in first.error.message
    assert back.attempts == len(events) - 1


async def test_with_a_zero_bound_the_asyncio_client_raises_connection_lost_at_once(database_url, db, store):
    port = free_port()
    generation_id, _ = await dispatched(store, "not waited for again")
    states: list = []
    async with AsyncClient(f"127.0.0.1:{port}", await KeyStore(db).create(OWNER), reconnect_timeout=0) as client:
        async with api_server(database_url, api_server_port=port):
            waiting = asyncio.create_task(client.wait(str(generation_id), on_update=states.append))
            await until(lambda: states)
        with pytest.raises(ConnectionLost) as caught:
            await waiting
    assert caught.value.generation == states[-1] and caught.value.attempts == 0
    assert "shutting down" in caught.value.last_error.message
