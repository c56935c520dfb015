"""The bench's checks that the calls it timed succeeded."""

from __future__ import annotations

import collections
import json

import pytest

from bench.verify import FigureFailed, check_calls, check_rows, count_rpc_codes


def _rpc(method: str, code: str) -> str:
    return json.dumps({"event": "rpc", "method": f"/leo.generation.v1.GenerationService/{method}", "code": code})


def test_count_rpc_codes_of_one_method():
    log = "\n".join(
        [
            _rpc("CreateGeneration", "OK"),
            _rpc("CreateGeneration", "OK"),
            _rpc("CreateGeneration", "UNAVAILABLE"),
            _rpc("GetGeneration", "OK"),
            json.dumps({"event": "listening"}),
            "not json at all",
            "{broken json",
        ]
    )
    assert count_rpc_codes(log, "CreateGeneration") == collections.Counter({"OK": 2, "UNAVAILABLE": 1})
    assert count_rpc_codes(log, "ListGenerations") == collections.Counter()


def test_every_call_ok_passes():
    check_calls("x", tool_succeeded=10, tool_failed=0, served=collections.Counter({"OK": 12, "CANCELLED": 2}))


@pytest.mark.parametrize(
    ("succeeded", "failed", "served", "message"),
    [
        (0, 0, {}, "no call succeeded"),
        (10, 3, {"OK": 10}, "counted 3 failed requests"),
        (10, 0, {"OK": 10, "UNAUTHENTICATED": 1}, "answered errors"),
        (10, 0, {"OK": 4}, "answered 4 calls OK, the load generator counted 10"),
    ],
)
def test_calls_that_did_not_succeed_fail_the_figure(succeeded, failed, served, message):
    with pytest.raises(FigureFailed, match=message):
        check_calls(
            "ours CreateGeneration", tool_succeeded=succeeded, tool_failed=failed, served=collections.Counter(served)
        )


def test_every_counted_create_needs_a_row():
    check_rows("x", tool_succeeded=10, rows_created=11)
    with pytest.raises(FigureFailed, match="9 rows created for 10 successful creates"):
        check_rows("x", tool_succeeded=10, rows_created=9)
