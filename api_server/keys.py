"""API keys from the command line: the one way to manage them, for operators
with access to the mesh's database (keys are never managed over the public API).

  python -m api_server.keys create --owner alice [--weight 3] [--max-priority high] [--json]
                                                           prints the key, once
  python -m api_server.keys list [--owner alice] [--json]
  python -m api_server.keys set-tier leo_AbCd12 [--weight N] [--max-priority low|normal|high] [--json]
  python -m api_server.keys revoke leo_AbCd12 [--json]      by the prefix `list` shows

A key's tier: its weight (1 to 100) is its creates' share of the AI
workers against other owners' when all wait (docs/dispatch.md), and its
highest priority is the most its creates may ask for (normal by default).

DATABASE_URL (or --database-url) names the database. Exit codes: 0 done,
1 a database error, 2 bad arguments, 4 no live key with that prefix,
5 the database cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import psycopg

from leo_mesh.db.keys import KeyInfo, KeyStore
from leo_mesh.db.pool import Database
from leo_mesh.errors import DatabaseUnavailable, ServerBusy
from leo_mesh.scheduling import Priority
from leo_mesh.settings import DatabaseSettings

_T = TypeVar("_T")
MIN_WEIGHT, MAX_WEIGHT = 1, 100


class Exit(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 4
    UNAVAILABLE = 5


class Failure(Exception):
    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.code = code


def _run(database_url: str, work: Callable[[KeyStore], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        async with Database(database_url, name="keys", max_size=1) as db:
            return await work(KeyStore(db))

    # The pool logs each failed connection attempt; the command says it once.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(run())
    except (DatabaseUnavailable, ServerBusy) as exc:
        raise Failure(f"the database is not answering: {exc} (check DATABASE_URL)", Exit.UNAVAILABLE) from exc
    except psycopg.Error as exc:
        raise Failure(f"database error: {' '.join(str(exc).split())}", Exit.ERROR) from exc


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


def _listed(keys: list[KeyInfo]) -> dict:
    return {
        "keys": [
            {
                "prefix": k.prefix,
                "owner": k.owner,
                "createTime": _time(k.created_at),
                "revokeTime": _time(k.revoked_at),
                "weight": k.weight,
                "maxPriority": f"PRIORITY_{k.max_priority.name}",
            }
            for k in keys
        ]
    }


def _table(keys: list[KeyInfo]) -> str:
    rows = [("PREFIX", "OWNER", "CREATED", "WEIGHT", "MAX_PRIORITY", "STATE")] + [
        (
            k.prefix,
            k.owner,
            f"{k.created_at:%Y-%m-%d %H:%M}",
            str(k.weight),
            k.max_priority.name.lower(),
            f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "live",
        )
        for k in keys
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]) for row in rows
    )


def _weight(text: str) -> int:
    value = int(text)
    if not MIN_WEIGHT <= value <= MAX_WEIGHT:
        raise argparse.ArgumentTypeError(f"must be from {MIN_WEIGHT} to {MAX_WEIGHT}")
    return value


def _priority(text: str) -> Priority:
    try:
        return Priority[text.upper()]
    except KeyError:
        raise argparse.ArgumentTypeError("must be low, normal or high") from None


def _command(args: argparse.Namespace) -> Exit:
    url, as_json = args.database_url, args.json
    if not url:
        raise Failure("DATABASE_URL is not set (or pass --database-url)", Exit.USAGE)
    if args.command == "create":
        if not args.owner.strip():
            raise Failure("--owner must not be blank", Exit.USAGE)
        key = _run(url, lambda store: store.create(args.owner, weight=args.weight, max_priority=args.max_priority))
        print(json.dumps({"key": key, "owner": args.owner}) if as_json else key)
        if not as_json:
            print(f"API key for {args.owner!r}: shown only now, store it (LEO_API_KEY).", file=sys.stderr)
    elif args.command == "list":
        keys = _run(url, lambda store: store.listed(args.owner))
        if as_json:
            print(json.dumps(_listed(keys)))
        elif keys:
            print(_table(keys))
        else:
            print("no keys", file=sys.stderr)
    elif args.command == "set-tier":
        if args.weight is None and args.max_priority is None:
            raise Failure("give --weight, --max-priority or both", Exit.USAGE)
        changed = _run(
            url, lambda store: store.set_tier(args.prefix, weight=args.weight, max_priority=args.max_priority)
        )
        if as_json:
            print(json.dumps({"changed": changed}))
        if not changed:
            raise Failure(f"no live key with prefix {args.prefix!r}", Exit.NOT_FOUND)
        if not as_json:
            print(f"changed {changed} key(s); api_servers see it within AUTH_CACHE_TTL_S", file=sys.stderr)
    else:
        revoked = _run(url, lambda store: store.revoke(args.prefix))
        if as_json:
            print(json.dumps({"revoked": revoked}))
        if not revoked:
            raise Failure(f"no live key with prefix {args.prefix!r}", Exit.NOT_FOUND)
        if not as_json:
            print(f"revoked {revoked} key(s)", file=sys.stderr)
    return Exit.OK


def _tier_options(parser: argparse.ArgumentParser, *, weight: int | None, max_priority: Priority | None) -> None:
    parser.add_argument(
        "--weight", type=_weight, default=weight, help="its share of the AI workers when all wait (1 to 100)"
    )
    parser.add_argument(
        "--max-priority",
        type=_priority,
        default=max_priority,
        metavar="{low,normal,high}",
        help="the highest priority its creates may ask for",
    )


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON (the HTTP API's field names)")
    parse = argparse.ArgumentParser(
        prog="python -m api_server.keys",
        description="Make, list and revoke API keys (operators with database access).",
        epilog="DATABASE_URL names the database. "
        "Exit codes: 0 ok, 1 database error, 2 usage, 4 no such key, 5 unreachable.",
    )
    parse.add_argument("--database-url", default=DatabaseSettings().database_url, help="default: $DATABASE_URL")
    commands = parse.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", parents=[common], help="make a key for an owner and print it, once")
    create.add_argument("--owner", required=True, help="who the key belongs to; its generations are theirs")
    _tier_options(create, weight=1, max_priority=Priority.NORMAL)
    set_tier = commands.add_parser(
        "set-tier", parents=[common], help="change the weight or the highest priority of the live keys with a prefix"
    )
    set_tier.add_argument("prefix", help="as `list` shows it, e.g. leo_AbCdEfGh")
    _tier_options(set_tier, weight=None, max_priority=None)
    listed = commands.add_parser("list", parents=[common], help="list keys: prefix, owner, when made, whether revoked")
    listed.add_argument("--owner", help="only this owner's keys")
    revoke = commands.add_parser("revoke", parents=[common], help="revoke the live keys with a prefix, at once")
    revoke.add_argument("prefix", help="as `list` shows it, e.g. leo_AbCdEfGh")
    return parse


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _command(args)
    except Failure as failure:
        print(f"keys: error: {failure}", file=sys.stderr)
        return failure.code


if __name__ == "__main__":
    raise SystemExit(main())
