"""P6: many WatchGeneration streams of one generation on one server, and
one final state delivered to all of them."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from bench import stacks, stats, verify
from bench.params import Params
from bench.procstat import CpuMeter, rss_kib
from bench.report import Row, Side, describe_codes


@dataclass
class WatchResult:
    held: int
    open_s: float
    ended_early: Counter
    ended: Counter
    latencies_ms: list[float]
    rss_kib_per_stream: float
    cpu_s: dict[str, float]
    # How the server itself says the streams ended (the mesh logs each; the echo counts the finished ones).
    server_codes: Counter


def watch_fanout(target: stacks.Target, server_pid: int, params: Params, *, generation_id: str) -> WatchResult:
    """Opens N watches of one generation in one burst from several worker
    processes, then makes it final (CancelGeneration: the same final-state
    commit and NOTIFY as a completion) and times its arrival at each."""
    n, workers = params.watch_streams, params.watch_workers
    rss_before = rss_kib(server_pid)
    meter = CpuMeter(target.process_roots()).start()
    mark = target.served.mark()
    procs = []
    for i in range(workers):
        streams = n // workers + (1 if i < n % workers else 0)
        command = [
            sys.executable, "-m", "bench.watchers",
            "--address", target.grpc_address,
            "--generation-id", generation_id,
            "--streams", str(streams),
            "--channels", str(max(1, math.ceil(streams / 1000))),
            "--authorization", target.headers["authorization"],
            "--open-timeout", "180",
            "--final-timeout", "120",
        ]  # fmt: skip
        procs.append(subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    try:
        opened = [_json_line(proc, "opened") for proc in procs]
        rss_held = rss_kib(server_pid)
        made_final = time.time()
        stacks.cancel(target.grpc_address, generation_id, target.headers)
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        done = [_json_line(proc, "done") for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.wait(30)
    meter.stop()
    held = sum(report["held"] for report in opened)
    ended_early, ended = Counter(), Counter()
    for report in opened:
        ended_early.update(report["ended_early"])
    for report in done:
        ended.update(report["ended"])
    arrivals = [arrival for report in done for arrival in report["arrivals"]]
    return WatchResult(
        held=held,
        open_s=max(report["opened"] for report in opened) - min(report["started"] for report in opened),
        ended_early=ended_early,
        ended=ended,
        latencies_ms=[(arrival - made_final) * 1000 for arrival in arrivals],
        rss_kib_per_stream=(rss_held - rss_before) / max(held, 1),
        cpu_s=meter.groups_s,
        server_codes=target.served.since(mark, "WatchGeneration"),
    )


def _json_line(proc: subprocess.Popen, event: str) -> dict:
    line = proc.stdout.readline()
    if not line:
        raise verify.FigureFailed(f"a watcher process exited (code {proc.wait()}) before reporting {event}")
    report = json.loads(line)
    if report["event"] != event:
        raise verify.FigureFailed(f"a watcher process reported {report['event']}, not {event}")
    return report


def watch_rows(echo: stacks.EchoTarget, ours: stacks.MeshTarget, params: Params) -> list[Row]:
    """P6: N watches of one generation on one server, one final state."""
    n = params.watch_streams
    results: dict[str, WatchResult] = {}
    try:
        results["echo"] = watch_fanout(echo, echo.echo.proc.pid, params, generation_id=str(uuid.uuid4()))
        generation_id = stacks.create_one(ours.grpc_address, ours.headers)
        results["ours"] = watch_fanout(ours, ours.mesh.api_servers[0].proc.pid, params, generation_id=generation_id)
    except (verify.FigureFailed, OSError, ValueError) as exc:
        return [Row("P6", f"{n:,} WatchGeneration streams, one final state", "", error=str(exc))]

    def side(result: WatchResult, value: float | None, detail: str = "", *, latencies: bool = False) -> Side:
        return Side(
            value=value,
            p50_ms=stats.percentile(result.latencies_ms, 50) if latencies else None,
            p99_ms=stats.percentile(result.latencies_ms, 99) if latencies else None,
            cpu_ms_per_call={name: s * 1000 / max(result.held, 1) for name, s in result.cpu_s.items()}
            if latencies
            else {},
            detail=detail,
        )

    def outcomes(result: WatchResult) -> str:
        early = Counter({code: count for code, count in result.ended_early.items() if code != "OK"})
        later = Counter({code: count for code, count in result.ended.items() if code != "OK"}) - early
        return (
            f"lost opening: {describe_codes(early)}; lost later: {describe_codes(later)}; "
            f"server counted: {describe_codes(result.server_codes)}"
        )

    rows = [
        Row("P6", f"final state → {n:,} watchers: delivery", "ms p99"),
        Row("P6", f"time to open {n:,} watches in one burst", "s"),
        Row("P6", f"watches held of {n:,} opened", "streams"),
        Row("P6", "server RSS per held watch", "KiB"),
    ]
    for name, result in results.items():
        delivered = f"delivered to {len(result.latencies_ms):,} of {result.held:,} held"
        setattr(rows[0], name, side(result, stats.percentile(result.latencies_ms, 99), delivered, latencies=True))
        setattr(rows[1], name, side(result, result.open_s))
        setattr(rows[2], name, side(result, result.held, outcomes(result)))
        setattr(rows[3], name, side(result, result.rss_kib_per_stream))
    return rows
