"""API keys from the command line, for operators with database access.

  python -m api_server.keys create --owner alice     prints the key, once
  python -m api_server.keys revoke --prefix leo_AbCd12
  python -m api_server.keys list [--owner alice]

DATABASE_URL (or --database-url) names the database.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from leo_mesh.db.keys import KeyStore
from leo_mesh.db.pool import Database
from leo_mesh.settings import DatabaseSettings


async def _cli(args: argparse.Namespace) -> int:
    async with Database(args.database_url, name="keys", max_size=1) as db:
        store = KeyStore(db)
        if args.command == "create":
            made = await store.create(args.owner)
            print(made)
            print(f"API key for {args.owner!r} (shown once; store it now).", file=sys.stderr)
        elif args.command == "revoke":
            revoked = await store.revoke(args.prefix)
            print(f"revoked {revoked} key(s)", file=sys.stderr)
            return 0 if revoked else 1
        else:
            for key in await store.listed(args.owner):
                state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "live"
                print(f"{key.prefix}…  {key.owner}  created {key.created_at:%Y-%m-%d %H:%M}  {state}")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api_server.keys", description="Manage API keys.")
    parser.add_argument("--database-url", default=DatabaseSettings().database_url, help="default: $DATABASE_URL")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("create", help="make a key and print it once").add_argument("--owner", required=True)
    commands.add_parser("revoke", help="revoke keys by their shown prefix").add_argument("--prefix", required=True)
    commands.add_parser("list", help="list keys (prefixes only)").add_argument("--owner")
    args = parser.parse_args(argv)
    return asyncio.run(_cli(args))


if __name__ == "__main__":
    raise SystemExit(main())
