"""The load generators: h2load (gRPC, and HTTP/1.1 at a fixed rate) and wrk
(JSON, closed loop). Both are C programs, far faster than a Python server.

h2load posts one gRPC message (a length-prefixed frame) again and again. It
counts any HTTP 200 as a success, even when grpc-status says the call
failed, so its counts are checked against the server's (bench.verify)
before a figure is trusted.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import Message

from bench import stats

WRK_SCRIPT = Path(__file__).with_name("wrk_report.lua")
WRK_REPORT_PREFIX = "BENCH_JSON "
GRPC_HEADERS = {"content-type": "application/grpc", "te": "trailers"}


class LoadGeneratorError(RuntimeError):
    """The load generator failed, or its output could not be read."""


def grpc_frame(message: Message) -> bytes:
    """A gRPC length-prefixed message: no compression flag, 4-byte big-endian length, the bytes."""
    body = message.SerializeToString()
    return b"\x00" + len(body).to_bytes(4, "big") + body


@dataclass
class LoadResult:
    tool: str
    succeeded: int  # what the tool counts as a success (HTTP 2xx)
    failed: int  # HTTP errors, socket errors and timeouts
    duration_s: float
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    # When the tool gives percentiles only (wrk), not each latency.
    p50_ms: float | None = None
    p99_ms: float | None = None
    loadgen_cpu_s: float = 0.0
    command: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.succeeded / self.duration_s if self.duration_s else 0.0

    def latency(self) -> tuple[float | None, float | None]:
        """(p50, p99) in ms."""
        if self.latencies_ms:
            return stats.percentile(self.latencies_ms, 50), stats.percentile(self.latencies_ms, 99)
        return self.p50_ms, self.p99_ms


_H2LOAD_REQUESTS = re.compile(
    r"requests: (?P<total>\d+) total, (?P<started>\d+) started, (?P<done>\d+) done, "
    r"(?P<succeeded>\d+) succeeded, (?P<failed>\d+) failed, (?P<errored>\d+) errored, (?P<timeout>\d+) timeout"
)
_H2LOAD_STATUS = re.compile(r"status codes: (?P<s2xx>\d+) 2xx, (?P<s3xx>\d+) 3xx, (?P<s4xx>\d+) 4xx, (?P<s5xx>\d+) 5xx")


def parse_h2load(text: str) -> dict[str, int]:
    """The request and status counts of h2load's summary."""
    requests = _H2LOAD_REQUESTS.search(text)
    codes = _H2LOAD_STATUS.search(text)
    if requests is None or codes is None:
        raise LoadGeneratorError(f"h2load printed no summary:\n{text[-2000:]}")
    return {key: int(value) for key, value in {**requests.groupdict(), **codes.groupdict()}.items()}


def parse_h2load_log(text: str) -> tuple[list[float], int]:
    """h2load --log-file rows (start µs, HTTP status, duration µs): the
    latencies in ms of the 2xx requests, and how many were not 2xx."""
    latencies, others = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        _, status, duration_us = line.split("\t")[:3]
        if 200 <= int(status) < 300:
            latencies.append(int(duration_us) / 1000)
        else:
            others += 1
    return latencies, others


def parse_wrk_report(text: str) -> dict:
    """The JSON line wrk_report.lua prints when wrk is done."""
    for line in text.splitlines():
        if line.startswith(WRK_REPORT_PREFIX):
            return json.loads(line[len(WRK_REPORT_PREFIX) :])
    raise LoadGeneratorError(f"wrk printed no report:\n{text[-2000:]}")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(command: list[str], timeout_s: float, env: dict[str, str] | None = None) -> tuple[str, float]:
    """Runs the load generator; returns its output and the CPU it used."""
    before = _children_cpu_s()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LoadGeneratorError(f"{command[0]} did not finish in {timeout_s:.0f} s") from exc
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise LoadGeneratorError(f"{' '.join(command)} exited {done.returncode}:\n{output[-2000:]}")
    return output, _children_cpu_s() - before


@dataclass
class H2load:
    """One h2load invocation. Either `duration_s` (timed, after `warmup_s`)
    or `requests` (a fixed count) must be set. `rps` makes each client send
    at that fixed rate (open loop) instead of as fast as it can."""

    url: str
    clients: int
    streams: int = 1
    duration_s: float | None = None
    warmup_s: float = 0.0
    requests: int | None = None
    rps: int | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    http1: bool = False

    def command(self, body_path: str | None, log_path: str) -> list[str]:
        command = ["h2load", "-c", str(self.clients), "-m", str(self.streams), "--log-file", log_path]
        if self.duration_s is not None:
            command += ["-D", _h2load_duration(self.duration_s)]
            if self.warmup_s:
                command += ["--warm-up-time", _h2load_duration(self.warmup_s)]
        elif self.requests is not None:
            command += ["-n", str(self.requests)]
        else:
            raise ValueError("h2load needs a duration or a request count")
        if self.rps is not None:
            command += ["--rps", str(self.rps)]
        if body_path is not None:
            command += ["-d", body_path]
        if self.http1:
            command.append("--h1")
        for name, value in self.headers.items():
            command += ["-H", f"{name}: {value}"]
        return [*command, self.url]

    def time_limit_s(self) -> float:
        """When to give up on h2load: a timed run's own time and a minute, a
        counted one at 10 requests a second, far below what the mesh takes."""
        if self.duration_s is not None:
            return self.duration_s + self.warmup_s + 60
        return (self.requests or 0) / 10 + 60

    def run(self) -> LoadResult:
        with tempfile.TemporaryDirectory(prefix="bench-h2load-") as tmp:
            body_path = None
            if self.body is not None:
                body_path = f"{tmp}/body"
                Path(body_path).write_bytes(self.body)
            log_path = f"{tmp}/requests.tsv"
            command = self.command(body_path, log_path)
            output, cpu_s = _run(command, timeout_s=self.time_limit_s())
            counts = parse_h2load(output)
            latencies, _ = parse_h2load_log(Path(log_path).read_text())
        duration = self.duration_s if self.duration_s is not None else _finished_in(output)
        return LoadResult(
            tool="h2load",
            succeeded=counts["s2xx"],
            failed=counts["total"] - counts["s2xx"],
            duration_s=duration,
            latencies_ms=latencies,
            loadgen_cpu_s=cpu_s,
            command=command,
        )


def _h2load_duration(seconds: float) -> str:
    """h2load takes whole numbers with a unit: 1.5 s is "1500ms"."""
    return f"{round(seconds * 1000)}ms"


def _finished_in(output: str) -> float:
    found = re.search(r"finished in ([\d.]+)(m?s)", output)
    if found is None:
        raise LoadGeneratorError(f"h2load printed no duration:\n{output[-2000:]}")
    value = float(found.group(1))
    return value / 1000 if found.group(2) == "ms" else value


@dataclass
class Wrk:
    """One wrk run (closed loop: each connection sends its next request when
    the last one is answered). Requests a non-2xx/3xx answer are failures."""

    url: str
    connections: int
    duration_s: float
    threads: int = 1
    method: str = "GET"
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        command = ["wrk", "-t", str(self.threads), "-c", str(self.connections), "-d", f"{self.duration_s:g}s"]
        command += ["--timeout", "10s", "-s", str(WRK_SCRIPT)]
        for name, value in self.headers.items():
            command += ["-H", f"{name}: {value}"]
        return [*command, self.url]

    def run(self) -> LoadResult:
        env = {**os.environ, "BENCH_METHOD": self.method, "BENCH_BODY": self.body or ""}
        command = self.command()
        output, cpu_s = _run(command, timeout_s=self.duration_s + 60, env=env)
        report = parse_wrk_report(output)
        errors = report["errors"]
        failed = errors["status"] + errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
        latency = report["latency_us"]
        return LoadResult(
            tool="wrk",
            succeeded=report["requests"] - errors["status"],
            failed=failed,
            duration_s=report["duration_us"] / 1e6,
            p50_ms=latency["p50"] / 1000 if report["requests"] else None,
            p99_ms=latency["p99"] / 1000 if report["requests"] else None,
            loadgen_cpu_s=cpu_s,
            command=command,
        )
