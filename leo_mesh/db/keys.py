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
from leo_mesh.scheduling import Priority

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
    weight: int = 1
    max_priority: Priority = Priority.NORMAL


@dataclass(frozen=True)
class Grant:
    """What a live key lets its caller do: act as its owner, with its tier's
    weight in the fair share of the AI pool, up to its highest priority."""

    owner: str
    weight: int = 1
    max_priority: Priority = Priority.NORMAL


class KeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, owner: str, key: str | None = None, *, weight: int = 1, max_priority: Priority = Priority.NORMAL
    ) -> str:
        """Store a key for `owner` (a new random one unless given) with its
        tier; returns it. Storing a key that exists already changes nothing."""
        if not owner.strip():
            raise ValueError("owner must not be blank")
        key = key or new_key()
        async with self._db.connection() as conn:
            await conn.execute(
                'INSERT INTO api_keys (id, owner, "keyHash", prefix, weight, "maxPriority")'
                ' VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT ("keyHash") DO NOTHING',
                (uuid.uuid4(), owner, key_hash(key), key[:SHOWN_PREFIX_LENGTH], weight, int(max_priority)),
            )
        return key

    async def grant_of(self, hashed: bytes) -> Grant | None:
        """What a live key (given as its hash) grants, or None for unknown and revoked keys."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                'SELECT owner, weight, "maxPriority" FROM api_keys WHERE "keyHash" = %s AND "revokedAt" IS NULL',
                (hashed,),
            )
            found = await cursor.fetchone()
            return Grant(found[0], found[1], Priority(found[2])) if found else None

    async def set_tier(self, prefix: str, *, weight: int | None = None, max_priority: Priority | None = None) -> int:
        """Change the live keys with this prefix: their weight, their highest
        priority (None: unchanged); returns how many. Callers see it within
        AUTH_CACHE_TTL_S."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                'UPDATE api_keys SET weight = COALESCE(%s, weight), "maxPriority" = COALESCE(%s, "maxPriority")'
                ' WHERE prefix = %s AND "revokedAt" IS NULL',
                (weight, None if max_priority is None else int(max_priority), prefix),
            )
            return cursor.rowcount

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
                'SELECT prefix, owner, "createdAt", "revokedAt", weight, "maxPriority" FROM api_keys'
                ' WHERE %s::text IS NULL OR owner = %s ORDER BY "createdAt"',
                (owner, owner),
            )
            return [
                KeyInfo(prefix, owner, created, revoked, weight, Priority(max_priority))
                for prefix, owner, created, revoked, weight, max_priority in await cursor.fetchall()
            ]
