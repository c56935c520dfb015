"""API keys: made here, stored only as SHA-256, revoked at once.

  python -m api_server.keys create --owner alice     prints the key, once
  python -m api_server.keys revoke --prefix leo_AbCd12
  python -m api_server.keys list [--owner alice]

Keys carry 256 random bits, so a plain SHA-256 is enough to store them (no
slow password hash needed): nobody can guess a preimage.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import sys
import uuid

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql import func

from leo_mesh.db.engine import create_engine, sessionmaker
from leo_mesh.db.models import ApiKey

KEY_PREFIX = "leo_"
SHOWN_PREFIX_LENGTH = 12


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(self, owner: str, key: str | None = None) -> str:
        """Store a key for `owner` (a new random one unless given); returns it.
        Storing a key that exists already changes nothing."""
        if not owner.strip():
            raise ValueError("owner must not be blank")
        key = key or new_key()
        async with self._sessions.begin() as session:
            await session.execute(
                insert(ApiKey)
                .values(id=uuid.uuid4(), owner=owner, key_hash=key_hash(key), prefix=key[:SHOWN_PREFIX_LENGTH])
                .on_conflict_do_nothing(index_elements=["keyHash"])
            )
        return key

    async def owner_of(self, key: str) -> str | None:
        """The owner of a live key, or None for unknown and revoked keys."""
        async with self._sessions() as session:
            return await session.scalar(
                select(ApiKey.owner).where(ApiKey.key_hash == key_hash(key), ApiKey.revoked_at.is_(None))
            )

    async def revoke(self, prefix: str) -> int:
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(ApiKey)
                .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
                .values(revoked_at=func.now())
            )
            return result.rowcount

    async def list(self, owner: str | None = None) -> list[ApiKey]:
        async with self._sessions() as session:
            query = select(ApiKey).order_by(ApiKey.created_at)
            if owner:
                query = query.where(ApiKey.owner == owner)
            return list(await session.scalars(query))


async def _cli(args: argparse.Namespace) -> int:
    engine = create_engine(args.database_url, pool_size=1)
    store = KeyStore(sessionmaker(engine))
    try:
        if args.command == "create":
            key = await store.create(args.owner)
            print(key)
            print(f"API key for {args.owner!r} (shown once; store it now).", file=sys.stderr)
        elif args.command == "revoke":
            revoked = await store.revoke(args.prefix)
            print(f"revoked {revoked} key(s)", file=sys.stderr)
            return 0 if revoked else 1
        else:
            for key in await store.list(args.owner):
                state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "live"
                print(f"{key.prefix}…  {key.owner}  created {key.created_at:%Y-%m-%d %H:%M}  {state}")
        return 0
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api_server.keys", description="Manage API keys.")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="default: $DATABASE_URL")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("create", help="make a key and print it once").add_argument("--owner", required=True)
    commands.add_parser("revoke", help="revoke keys by their shown prefix").add_argument("--prefix", required=True)
    commands.add_parser("list", help="list keys (prefixes only)").add_argument("--owner")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("DATABASE_URL is not set (or pass --database-url)")
    return asyncio.run(_cli(args))


if __name__ == "__main__":
    raise SystemExit(main())
