"""API keys: stored only as SHA-256, revoked at once.

Keys carry 256 random bits, so a plain SHA-256 is enough to store them (no
slow password hash needed): nobody can guess a preimage. A revocation,
whoever makes it, commits with a NOTIFY on REVOKED_CHANNEL (payload: the
key's hash in hex; a trigger of migration 0006), so every api_server ends
the key's use (cached lookups, open watches) at once.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from leo_mesh.db.pool import Database

KEY_PREFIX = "leo_"
SHOWN_PREFIX_LENGTH = 12
REVOKED_CHANNEL = "api_key_revoked"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class KeyInfo:
    prefix: str
    owner: str
    created_at: datetime
    revoked_at: datetime | None


class KeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, owner: str, key: str | None = None) -> str:
        """Store a key for `owner` (a new random one unless given); returns it.
        Storing a key that exists already changes nothing."""
        if not owner.strip():
            raise ValueError("owner must not be blank")
        key = key or new_key()
        async with self._db.connection() as conn:
            await conn.execute(
                'INSERT INTO api_keys (id, owner, "keyHash", prefix) VALUES (%s, %s, %s, %s)'
                ' ON CONFLICT ("keyHash") DO NOTHING',
                (uuid.uuid4(), owner, key_hash(key), key[:SHOWN_PREFIX_LENGTH]),
            )
        return key

    async def owner_of(self, hashed: bytes) -> str | None:
        """The owner of a live key (given as its hash), or None for unknown and revoked keys."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                'SELECT owner FROM api_keys WHERE "keyHash" = %s AND "revokedAt" IS NULL', (hashed,)
            )
            found = await cursor.fetchone()
            return found[0] if found else None

    async def revoke(self, prefix: str) -> int:
        """Revoke the live keys with this shown prefix; returns how many."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                'UPDATE api_keys SET "revokedAt" = now() WHERE prefix = %s AND "revokedAt" IS NULL', (prefix,)
            )
            return cursor.rowcount

    async def listed(self, owner: str | None = None) -> list[KeyInfo]:
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                'SELECT prefix, owner, "createdAt", "revokedAt" FROM api_keys'
                ' WHERE %s::text IS NULL OR owner = %s ORDER BY "createdAt"',
                (owner, owner),
            )
            return [KeyInfo(*found) for found in await cursor.fetchall()]
