"""The process's database connections, and what their failures mean.

One psycopg pool per process, in autocommit: a single read is one round
trip (no BEGIN/ROLLBACK around it) and a transaction is asked for
explicitly. No check on checkout: a connection that died with the server
fails its statement, is discarded by the pool, and the caller gets
UNAVAILABLE, which clients retry.

Failures become domain errors here, so nothing above this module knows
psycopg: a queue for connections that is too long, or a wait that lasts too
long while the pool is full, is `ServerBusy` (shed load, retry later); no
connection at all, or one that broke, is `DatabaseUnavailable`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import orjson
import psycopg
import psycopg_pool
from psycopg import AsyncConnection
from psycopg.types.json import set_json_dumps, set_json_loads

from leo_mesh.db.urls import libpq_url
from leo_mesh.errors import DatabaseUnavailable, ServerBusy

CONNECT_TIMEOUT_S = 5
# While connecting fails, a call waits this long for a connection (not the
# whole checkout timeout): answers during an outage come at once.
OUTAGE_CHECKOUT_TIMEOUT_S = 0.2
# A connection the pool cannot make is retried with backoff for this long,
# then dropped; a call that needs one asks again at once. So the pool
# reconnects as soon as the database is back, not after a grown backoff.
RECONNECT_TIMEOUT_S = 5.0

# Errors that mean the server or the connection to it is gone.
CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, OSError)


class Database:
    def __init__(
        self,
        database_url: str,
        *,
        name: str,
        max_size: int = 10,
        max_waiting: int = 200,
        checkout_timeout_s: float = 3.0,
    ) -> None:
        self.url = database_url
        self._pool = psycopg_pool.AsyncConnectionPool(
            libpq_url(database_url),
            min_size=min(2, max_size),
            max_size=max_size,
            max_waiting=max_waiting,
            timeout=checkout_timeout_s,
            open=False,
            kwargs={"autocommit": True, "application_name": name, "connect_timeout": CONNECT_TIMEOUT_S},
            configure=self._connected,
            reconnect_timeout=RECONNECT_TIMEOUT_S,
        )
        self._checkout_timeout_s = checkout_timeout_s
        # The pool's count of failed connection attempts when one last succeeded.
        self._errors_when_last_connected = 0

    async def _connected(self, conn: AsyncConnection) -> None:
        # orjson reads a list page's JSON columns several times faster than json.
        set_json_loads(orjson.loads, conn)
        set_json_dumps(orjson.dumps, conn)
        self._errors_when_last_connected = self._pool.get_stats().get("connections_errors", 0)

    def _failing(self) -> bool:
        """Whether connecting has failed since a connection was last made."""
        return self._pool.get_stats().get("connections_errors", 0) > self._errors_when_last_connected

    def _timeout_s(self) -> float:
        return OUTAGE_CHECKOUT_TIMEOUT_S if self._failing() else self._checkout_timeout_s

    async def open(self) -> None:
        """Start connecting in the background: a process starts even while the database is down."""
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection in autocommit mode."""
        try:
            async with self._pool.connection(timeout=self._timeout_s()) as conn:
                yield conn
        except psycopg_pool.TooManyRequests:
            raise ServerBusy() from None
        except psycopg_pool.PoolTimeout:
            # No connection freed in time: overload, unless connecting has
            # failed since a connection was last made.
            if self._failing():
                raise DatabaseUnavailable() from None
            raise ServerBusy() from None
        except CONNECTION_ERRORS as exc:
            raise DatabaseUnavailable() from exc

    @contextlib.asynccontextmanager
    async def transaction(self, *, pipelined: bool = False) -> AsyncIterator[AsyncConnection]:
        """A pooled connection inside one transaction (committed on success).

        `pipelined`: statements go out without waiting for the ones before
        (psycopg's pipeline mode) until a result is read, so BEGIN and the
        statements before the first read cost one round trip. A result
        (rows, rowcount) is there only once read with fetch*.
        """
        async with self.connection() as conn:
            if not pipelined:
                async with conn.transaction():
                    yield conn
                return
            async with conn.pipeline(), conn.transaction():
                yield conn

    def stats(self) -> dict[str, int]:
        """The pool's counters (psycopg_pool's names): pool_size, pool_available, requests_waiting, …"""
        return self._pool.get_stats()
