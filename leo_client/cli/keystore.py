"""The command line's one door to the API keys in the database, for operators.

Everything `leo keys` needs from the services' side (KeyStore, the database
pool) is imported here and nowhere else in leo_client, and only when `leo
keys` runs. Keys are shown once, at creation; only their prefixes are
stored readable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import psycopg

from leo_client.cli.exits import CliFailure, ExitCode
from leo_mesh.db.keys import KeyStore
from leo_mesh.db.pool import Database
from leo_mesh.errors import DatabaseUnavailable, ServerBusy

_T = TypeVar("_T")


@dataclass(frozen=True)
class KeyRecord:
    """What is known of a stored key: never the key itself."""

    prefix: str
    owner: str
    create_time: datetime
    revoke_time: datetime | None


class Keys:
    """Create, list and revoke API keys in the database at `database_url`."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url

    def _run(self, work: Callable[[KeyStore], Awaitable[_T]]) -> _T:
        async def run() -> _T:
            async with Database(self._database_url, name="leo-keys", max_size=1) as db:
                return await work(KeyStore(db))

        # The pool logs each failed connection attempt; the command says it once.
        logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
        try:
            return asyncio.run(run())
        except (DatabaseUnavailable, ServerBusy) as exc:
            message = f"the database is not answering: {exc} (check DATABASE_URL)"
            raise CliFailure(message, ExitCode.UNAVAILABLE) from exc
        except psycopg.Error as exc:
            raise CliFailure(f"database error: {' '.join(str(exc).split())}", ExitCode.ERROR) from exc

    def create(self, owner: str) -> str:
        """A new key of `owner`, returned once."""
        if not owner.strip():
            raise CliFailure("--owner must not be blank", ExitCode.USAGE)
        return self._run(lambda store: store.create(owner))

    def listed(self, owner: str | None = None) -> list[KeyRecord]:
        """Every key (of `owner`, if given), oldest first."""
        rows = self._run(lambda store: store.listed(owner))
        return [KeyRecord(row.prefix, row.owner, row.created_at, row.revoked_at) for row in rows]

    def revoke(self, prefix: str) -> int:
        """Revoke the live keys with this prefix; how many there were."""
        return self._run(lambda store: store.revoke(prefix))
