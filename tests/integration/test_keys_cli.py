"""`python -m api_server.keys`, the one way to manage API keys, on a real database."""

from __future__ import annotations

import hashlib
import json

import psycopg
import pytest

from api_server import keys


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = keys.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def stored(database_url: str, owner: str) -> list[tuple[bytes, bool]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute('SELECT "keyHash", "revokedAt" IS NOT NULL FROM api_keys WHERE owner = %s', (owner,))
        return [(bytes(hashed), revoked) for hashed, revoked in rows]


def test_a_key_is_shown_once_stored_as_a_hash_listed_by_prefix_and_revoked(database_url, capsys):
    url = ("--database-url", database_url)
    code, key, err = run(capsys, *url, "create", "--owner", "carol")
    key = key.strip()
    assert code == 0 and key.startswith("leo_") and len(key) > 40 and "shown only now" in err
    assert stored(database_url, "carol") == [(hashlib.sha256(key.encode()).digest(), False)]

    code, table, _ = run(capsys, *url, "list")
    assert code == 0 and key[:12] in table and key not in table and "live" in table
    code, listed, _ = run(capsys, *url, "list", "--owner", "carol", "--json")
    assert [(k["prefix"], k["owner"], k["revokeTime"]) for k in json.loads(listed)["keys"]] == [
        (key[:12], "carol", None)
    ]

    code, out, _ = run(capsys, *url, "revoke", key[:12], "--json")
    assert (code, json.loads(out)) == (0, {"revoked": 1})
    assert stored(database_url, "carol") == [(hashlib.sha256(key.encode()).digest(), True)]
    code, _, err = run(capsys, *url, "revoke", key[:12])
    assert code == keys.Exit.NOT_FOUND == 4 and err.count("\n") == 1 and key[:12] in err


def test_create_prints_json_with_the_key_and_its_owner(database_url, capsys):
    code, out, _ = run(capsys, "--database-url", database_url, "create", "--owner", "dave", "--json")
    made = json.loads(out)
    assert code == 0 and made["owner"] == "dave" and made["key"].startswith("leo_")


def test_a_blank_owner_is_a_usage_error_and_makes_nothing(database_url, capsys):
    code, _, err = run(capsys, "--database-url", database_url, "create", "--owner", "  ")
    assert code == keys.Exit.USAGE == 2 and "--owner" in err
    assert stored(database_url, "  ") == []


def test_an_unreachable_database_is_one_line_and_exit_5(capsys):
    code, _, err = run(capsys, "--database-url", "postgresql://postgres@127.0.0.1:1/leo", "list")
    assert code == keys.Exit.UNAVAILABLE == 5
    assert err.count("\n") == 1 and "database" in err


def test_missing_arguments_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exited:
        keys.main(["create"])
    assert exited.value.code == 2
