"""Did the calls a load generator counted really succeed?

h2load counts HTTP 200 as success even when grpc-status is an error, so
each figure compares the tool's count with the server's own: the mesh's
api_server logs one JSON line per RPC with its status code
(leo_mesh.grpc_server.RpcInterceptor), and the echo counts what it served.
A figure whose calls did not succeed fails loudly.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import grpc

from bench.echo_server import STATS_METHOD

OK = "OK"
# A load generator stopping at the end of its time cancels the calls in flight.
HARMLESS = frozenset({OK, "CANCELLED"})


class FigureFailed(RuntimeError):
    """The calls behind a figure did not (all) succeed."""


def count_rpc_codes(log_text: str, method: str) -> collections.Counter[str]:
    """Status codes of `method`'s calls in a service log (RpcInterceptor's "rpc" lines)."""
    codes: collections.Counter[str] = collections.Counter()
    suffix = f"/{method}"
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("event") == "rpc" and str(record.get("method", "")).endswith(suffix):
            codes[record.get("code", "UNKNOWN")] += 1
    return codes


class ServedCounts:
    """How many calls of a method a server answered, between two readings."""

    def mark(self) -> object:
        raise NotImplementedError

    def since(self, mark: object, method: str) -> collections.Counter[str]:
        raise NotImplementedError


class LoggedRpcs(ServedCounts):
    """From the per-RPC lines of a service log."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path

    def mark(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def since(self, mark: int, method: str) -> collections.Counter[str]:
        with open(self.log_path, "rb") as log:
            log.seek(mark)
            return count_rpc_codes(log.read().decode(errors="replace"), method)


class EchoServed(ServedCounts):
    """From the echo's own count of successful calls."""

    def __init__(self, address: str) -> None:
        self.address = address

    def _read(self) -> dict[str, int]:
        with grpc.insecure_channel(self.address) as channel:
            return json.loads(channel.unary_unary(STATS_METHOD)(b"", timeout=10))

    def mark(self) -> dict[str, int]:
        return self._read()

    def since(self, mark: dict[str, int], method: str) -> collections.Counter[str]:
        return collections.Counter({OK: self._read().get(method, 0) - mark.get(method, 0)})


def check_calls(what: str, *, tool_succeeded: int, tool_failed: int, served: collections.Counter[str]) -> None:
    """Raises FigureFailed unless every call succeeded: the tool saw no
    failure, the server answered no error, and it answered OK at least as
    many calls as the tool counted."""
    problems = []
    if tool_succeeded == 0:
        problems.append("no call succeeded")
    if tool_failed:
        problems.append(f"the load generator counted {tool_failed} failed requests")
    errors = {code: count for code, count in served.items() if code not in HARMLESS}
    if errors:
        problems.append(f"the server answered errors: {dict(errors)}")
    if served[OK] < tool_succeeded:
        problems.append(f"the server answered {served[OK]} calls OK, the load generator counted {tool_succeeded}")
    if problems:
        raise FigureFailed(f"{what}: " + "; ".join(problems))


def check_rows(what: str, *, tool_succeeded: int, rows_created: int) -> None:
    """Every create the load generator counted must have made a row."""
    if rows_created < tool_succeeded:
        raise FigureFailed(f"{what}: {rows_created} rows created for {tool_succeeded} successful creates")
