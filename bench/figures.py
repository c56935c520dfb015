"""The figures. Each takes the targets it compares and returns report Rows;
a figure whose calls did not all succeed comes back with its error.

A run of one side: wait until neither side has work left over, meter CPU of
the side's processes, note what the server has served and how many
transactions wrote, run the load, wait until the work the calls set off is
done, then check the load generator's count against the server's
(bench.verify).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from bench import stacks, stats, verify
from bench.loadgen import GRPC_HEADERS, H2load, LoadGeneratorError, LoadResult, Wrk, grpc_frame
from bench.procstat import CpuMeter, rss_kib
from bench.report import Row, Side
from leo.generation.v1 import generation_pb2

SERVICE_PATH = "/leo.generation.v1.GenerationService"
CREATE = generation_pb2.CreateGenerationRequest(
    prompt="bench: a lighthouse at dusk", model=generation_pb2.MODEL_SDXL, width=1024, height=1024
)
CREATE_JSON = json.dumps({"prompt": CREATE.prompt, "model": "MODEL_SDXL", "width": 1024, "height": 1024})
LIST_PAGE_SIZE = 20
# Closed-loop load, as the review measured it.
H2LOAD_CLIENTS, H2LOAD_STREAMS = 16, 8
WRK_CONNECTIONS = 32


@dataclass(frozen=True)
class Params:
    repeats: int
    duration_s: float
    warmup_s: float
    # Fixed-rate (P3) runs are longer: at a few dozen calls a second a p99 needs samples.
    fixed_rate_duration_s: float
    e2e_generations: int
    watch_streams: int
    watch_workers: int
    statement_probe_generations: int


FULL = Params(
    repeats=3,
    duration_s=4,
    warmup_s=1,
    fixed_rate_duration_s=8,
    e2e_generations=10_000,
    watch_streams=10_000,
    watch_workers=4,
    statement_probe_generations=20,
)
QUICK = Params(
    repeats=1,
    duration_s=2,
    warmup_s=0.5,
    fixed_rate_duration_s=3,
    e2e_generations=300,
    watch_streams=500,
    watch_workers=2,
    statement_probe_generations=10,
)


@dataclass
class Run:
    """One load run against one side, checked."""

    load: LoadResult
    served_ok: int
    cpu_s: dict[str, float]
    writes: int | None
    machine_busy_s: float
    machine_total_s: float

    def cpu_ms_per_call(self) -> dict[str, float]:
        calls = max(self.served_ok, 1)
        per_call = {name: seconds * 1000 / calls for name, seconds in self.cpu_s.items()}
        per_call["loadgen"] = self.load.loadgen_cpu_s * 1000 / calls
        return per_call

    def record(self) -> dict:
        p50, p99 = self.load.latency()
        return {
            "tool": self.load.tool,
            "command": self.load.command,
            "succeeded": self.load.succeeded,
            "failed": self.load.failed,
            "duration_s": self.load.duration_s,
            "rate": self.load.rate,
            "p50_ms": p50,
            "p99_ms": p99,
            "served_ok": self.served_ok,
            "cpu_s": self.cpu_s,
            "loadgen_cpu_s": self.load.loadgen_cpu_s,
            "db_write_transactions": self.writes,
            "machine_busy_s": self.machine_busy_s,
            "machine_total_s": self.machine_total_s,
        }


def run_once(target: stacks.Target, load: H2load | Wrk, method: str, *, counts_rows: bool = False) -> Run:
    """Runs `load` against `target` and checks that every call succeeded."""
    what = f"{target.label} {method}"
    meter = CpuMeter(target.process_roots()).start()
    mark = target.served.mark()
    database = target.database_url
    rows_before = count_rows(database) if counts_rows and database else None
    xid_before = stacks.xid_now(database) if database else None
    result = load.run()
    # What the calls set off (dispatch, the AI, its callback) is part of their price.
    target.settle()
    meter.stop()
    writes = stacks.xid_now(database) - xid_before - 1 if database else None
    served = target.served.since(mark, method)
    verify.check_calls(what, tool_succeeded=result.succeeded, tool_failed=result.failed, served=served)
    if rows_before is not None:
        verify.check_rows(what, tool_succeeded=result.succeeded, rows_created=count_rows(database) - rows_before)
    return Run(result, served[verify.OK], meter.groups_s, writes, meter.machine_busy_s, meter.machine_total_s)


def count_rows(database_url: str, owner: str = stacks.OWNER) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM generations WHERE owner = %s", (owner,)).fetchone()[0]


def side_of(runs: list[Run], value: Callable[[Run], float | None], detail: str = "") -> Side:
    """Medians over the runs; CPU per call over all of them together."""
    latencies = [run.load.latency() for run in runs]
    calls = sum(run.served_ok for run in runs) or 1
    cpu: Counter[str] = Counter()
    for run in runs:
        cpu.update(run.cpu_s)
        cpu["loadgen"] += run.load.loadgen_cpu_s
    cpu_ms = {name: seconds * 1000 / calls for name, seconds in cpu.items()}
    writes = [run.writes for run in runs if run.writes is not None]
    return Side(
        value=stats.median([value(run) for run in runs]),
        p50_ms=stats.median([p50 for p50, _ in latencies]),
        p99_ms=stats.median([p99 for _, p99 in latencies]),
        cpu_ms_per_call=cpu_ms,
        db_writes_per_call=sum(writes) / calls if writes else None,
        detail=detail,
        runs=[run.record() for run in runs],
    )


@dataclass
class Load:
    """How to load one method of a target, as fast as it answers."""

    key: str
    figure: str
    method: str
    make: Callable[[stacks.Target, Params], H2load | Wrk]
    counts_rows: bool = False
    # The fixed-rate twin of this load (P3), at a given total rate.
    fixed_rate: Callable[[stacks.Target, Params, float], H2load] | None = None


def _grpc(method: str, message) -> Callable[[stacks.Target, Params], H2load]:
    def make(target: stacks.Target, params: Params) -> H2load:
        return H2load(
            url=f"http://{target.grpc_address}{SERVICE_PATH}/{method}",
            clients=H2LOAD_CLIENTS,
            streams=H2LOAD_STREAMS,
            duration_s=params.duration_s,
            warmup_s=params.warmup_s,
            body=grpc_frame(message),
            headers={**GRPC_HEADERS, **target.headers},
        )

    return make


def fixed_rate_split(rate: float, max_clients: int) -> tuple[int, int]:
    """(clients, requests a second each) whose product is within 2% of `rate`
    (h2load's --rps is per client and whole), with as many clients as can be,
    so that the requests are spread over the second; else the closest."""

    def error(clients: int) -> float:
        return abs(clients * max(1, round(rate / clients)) - rate)

    candidates = range(1, max_clients + 1)
    close = [c for c in candidates if error(c) <= max(0.5, 0.02 * rate)]
    clients = max(close) if close else min(candidates, key=error)
    return clients, max(1, round(rate / clients))


def _grpc_fixed_rate(method: str, message) -> Callable[[stacks.Target, Params, float], H2load]:
    def make(target: stacks.Target, params: Params, rate: float) -> H2load:
        clients, rps = fixed_rate_split(rate, max_clients=16)
        return H2load(
            url=f"http://{target.grpc_address}{SERVICE_PATH}/{method}",
            clients=clients,
            streams=256,  # never the limit: a slow answer must not hold back the next request
            duration_s=params.fixed_rate_duration_s,
            warmup_s=params.warmup_s,
            rps=rps,
            body=grpc_frame(message),
            headers={**GRPC_HEADERS, **target.headers},
        )

    return make


def _json_create(target: stacks.Target, params: Params) -> Wrk:
    return Wrk(
        url=f"{target.json_url}/v1/generations",
        connections=WRK_CONNECTIONS,
        duration_s=params.duration_s,
        method="POST",
        body=CREATE_JSON,
        headers={"content-type": "application/json", **target.headers},
    )


def _json_create_fixed_rate(target: stacks.Target, params: Params, rate: float) -> H2load:
    # HTTP/1.1 with a body: one request in flight per connection, so many connections.
    clients, rps = fixed_rate_split(rate, max_clients=64)
    return H2load(
        url=f"{target.json_url}/v1/generations",
        clients=clients,
        duration_s=params.fixed_rate_duration_s,
        warmup_s=params.warmup_s,
        rps=rps,
        body=CREATE_JSON.encode(),
        headers={"content-type": "application/json", **target.headers},
        http1=True,
    )


def throughput_loads(generation_id: Callable[[stacks.Target], str]) -> list[Load]:
    """P1 and P2. Get reads `generation_id(target)`."""

    def get(target: stacks.Target, params: Params) -> H2load:
        request = generation_pb2.GetGenerationRequest(generation_id=generation_id(target))
        return _grpc("GetGeneration", request)(target, params)

    def get_fixed(target: stacks.Target, params: Params, rate: float) -> H2load:
        request = generation_pb2.GetGenerationRequest(generation_id=generation_id(target))
        return _grpc_fixed_rate("GetGeneration", request)(target, params, rate)

    list_request = generation_pb2.ListGenerationsRequest(page_size=LIST_PAGE_SIZE)
    return [
        Load(
            "P1",
            f"gRPC CreateGeneration, h2load {H2LOAD_CLIENTS} conns x {H2LOAD_STREAMS} streams",
            "CreateGeneration",
            _grpc("CreateGeneration", CREATE),
            counts_rows=True,
            fixed_rate=_grpc_fixed_rate("CreateGeneration", CREATE),
        ),
        Load(
            "P2",
            f"JSON create through Envoy, wrk {WRK_CONNECTIONS} conns",
            "CreateGeneration",
            _json_create,
            counts_rows=True,
            fixed_rate=_json_create_fixed_rate,
        ),
        Load("P2", "gRPC GetGeneration, h2load", "GetGeneration", get, fixed_rate=get_fixed),
        Load(
            "P2",
            f"gRPC ListGenerations ({LIST_PAGE_SIZE} a page), h2load",
            "ListGenerations",
            _grpc("ListGenerations", list_request),
            fixed_rate=_grpc_fixed_rate("ListGenerations", list_request),
        ),
    ]


def compare(load: Load, echo: stacks.Target, ours: stacks.Target, params: Params, *, unit: str = "calls/s") -> Row:
    """Echo, then ours, back to back, `repeats` times; medians."""
    row = Row(load.key, load.figure, unit)
    runs: dict[str, list[Run]] = {"echo": [], "ours": []}
    try:
        for _ in range(params.repeats):
            for name, target in (("echo", echo), ("ours", ours)):
                # Nothing left over from the run before competes with this one.
                echo.settle()
                ours.settle()
                runs[name].append(
                    run_once(target, load.make(target, params), load.method, counts_rows=load.counts_rows)
                )
    except (verify.FigureFailed, LoadGeneratorError) as exc:
        row.error = str(exc)
        return row
    row.echo = side_of(runs["echo"], lambda run: run.load.rate)
    row.ours = side_of(runs["ours"], lambda run: run.load.rate)
    return row


def latency_at_half(load: Load, max_row: Row, echo: stacks.Target, ours: stacks.Target, params: Params) -> Row:
    """P3: each side at half of its own measured maximum, at a fixed rate; its p99."""
    row = Row("P3", f"p99 at half of max: {load.figure.split(',')[0]}", "ms p99")
    if max_row.error or max_row.echo is None or max_row.ours is None:
        row.error = "no maximum to halve (its throughput figure failed)"
        return row
    sides: dict[str, Side] = {}
    try:
        for name, target, maximum in (("echo", echo, max_row.echo.value), ("ours", ours, max_row.ours.value)):
            echo.settle()
            ours.settle()
            offered = max(1.0, maximum / 2)
            h2load = load.fixed_rate(target, params, offered)
            run = run_once(target, h2load, load.method, counts_rows=load.counts_rows)
            actual = h2load.clients * h2load.rps
            side = side_of([run], lambda r: r.load.latency()[1], detail=f"at {actual}/s, done {run.load.rate:.0f}/s")
            sides[name] = side
    except (verify.FigureFailed, LoadGeneratorError) as exc:
        row.error = str(exc)
        return row
    row.echo, row.ours = sides["echo"], sides["ours"]
    return row


def log_cost(plain: stacks.Target, logged: stacks.Target, params: Params) -> Row:
    """The per-RPC log interceptor's price: the echo without it ("echo") and with it ("ours")."""
    load = Load("L", "", "CreateGeneration", _grpc("CreateGeneration", CREATE))
    row = compare(load, plain, logged, params)
    row.figure = "per-RPC log: gRPC create on echo without | with RpcInterceptor + JSON log"
    return row


@dataclass
class EndToEnd:
    created: int
    statuses: dict[str, int]
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)


def end_to_end(ours: stacks.MeshTarget, params: Params) -> Row:
    """P4: N creates as fast as they are taken (h2load -n), then until none
    is PENDING; completions/s and create→complete from the rows' own times.
    Fails, with its figures, unless every create succeeded and every
    generation is COMPLETE."""
    n = params.e2e_generations
    row = Row("P4", f"{n:,} generations end to end, mock AI delay 0", "completions/s")
    owner = f"bench-e2e-{uuid.uuid4().hex[:8]}"
    headers = ours.new_owner(owner)
    database = ours.database_url
    meter = CpuMeter(ours.process_roots()).start()
    mark = ours.served.mark()
    xid_before = stacks.xid_now(database)
    load = H2load(
        url=f"http://{ours.grpc_address}{SERVICE_PATH}/CreateGeneration",
        clients=H2LOAD_CLIENTS,
        streams=H2LOAD_STREAMS,
        requests=n,
        body=grpc_frame(CREATE),
        headers={**GRPC_HEADERS, **headers},
    )
    try:
        result = load.run()
        finished = _wait_final(database, owner)
    except (LoadGeneratorError, verify.FigureFailed) as exc:
        row.error = str(exc)
        return row
    meter.stop()
    writes = stacks.xid_now(database) - xid_before - 1
    served = ours.served.since(mark, "CreateGeneration")
    rejected = {code: count for code, count in served.items() if code != verify.OK}
    problems = []
    if result.failed or result.succeeded != n:
        problems.append(f"h2load: {result.succeeded:,} of {n:,} creates answered HTTP 2xx, {result.failed:,} failed")
    if rejected:
        problems.append(f"creates answered {rejected} (h2load counts them as successes)")
    if finished.created != served[verify.OK]:
        problems.append(f"{finished.created:,} rows for {served[verify.OK]:,} creates answered OK")
    if finished.statuses.get("COMPLETE", 0) != finished.created:
        problems.append(f"not every generation COMPLETE: {finished.statuses}")
    created = max(finished.created, 1)
    cpu_ms = {name: seconds * 1000 / created for name, seconds in meter.groups_s.items()}
    cpu_ms["loadgen"] = result.loadgen_cpu_s * 1000 / created
    detail = f"{describe_statuses(finished.statuses)}; creates {result.rate:.0f}/s"
    row.ours = Side(
        value=finished.created / finished.seconds if finished.seconds else None,
        p50_ms=stats.percentile(finished.latencies_ms, 50),
        p99_ms=stats.percentile(finished.latencies_ms, 99),
        cpu_ms_per_call=cpu_ms,
        db_writes_per_call=writes / created,
        detail=f"{detail}; rejected {rejected}" if rejected else detail,
        runs=[
            {
                "creates_sent": n,
                "creates_answered": dict(served),
                "create_rate": result.rate,
                "statuses": finished.statuses,
                "first_create_to_last_complete_s": finished.seconds,
                "cpu_s": meter.groups_s,
                "db_write_transactions": writes,
                "loadgen_cpu_s": result.loadgen_cpu_s,
                "machine_busy_s": meter.machine_busy_s,
                "machine_total_s": meter.machine_total_s,
            }
        ],
    )
    if problems:
        row.error = "; ".join(problems)
    return row


def describe_statuses(statuses: dict[str, int]) -> str:
    """Either "all 500 COMPLETE" or each status's count."""
    if set(statuses) == {"COMPLETE"}:
        return f"all {statuses['COMPLETE']:,} COMPLETE"
    return ", ".join(f"{status} {count:,}" for status, count in sorted(statuses.items()))


def describe_codes(codes: Counter) -> str:
    """Status codes and their counts, "none" for none."""
    return ", ".join(f"{code} {count:,}" for code, count in sorted(codes.items()) if count) or "none"


def _wait_final(database_url: str, owner: str, *, stall_s: float = 30.0) -> EndToEnd:
    """Polls until none of the owner's generations is PENDING (call it once
    every create has been answered); fails after `stall_s` without progress."""
    last_pending, last_progress = None, time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            statuses = dict(
                conn.execute(
                    "SELECT status::text, count(*) FROM generations WHERE owner = %s GROUP BY 1", (owner,)
                ).fetchall()
            )
            pending = statuses.get("PENDING", 0)
            if pending == 0:
                break
            if pending != last_pending:
                last_pending, last_progress = pending, time.monotonic()
            elif time.monotonic() - last_progress > stall_s:
                raise verify.FigureFailed(f"no generation finished for {stall_s:.0f} s: {statuses}")
            time.sleep(0.5)
        first, last = conn.execute(
            'SELECT min("createdAt"), max("completedAt") FROM generations WHERE owner = %s', (owner,)
        ).fetchone()
        latencies = [
            value * 1000
            for (value,) in conn.execute(
                'SELECT extract(epoch FROM "completedAt" - "createdAt")::float8 FROM generations WHERE owner = %s',
                (owner,),
            )
            if value is not None
        ]
    return EndToEnd(sum(statuses.values()), statuses, (last - first).total_seconds(), latencies)


def statements_per_generation(postgres: stacks.Postgres, ours: stacks.MeshTarget, params: Params) -> Row:
    """Statements PostgreSQL executed per generation, create to COMPLETE
    (log_statement = all for a short probe, minus the background rate of an
    idle window of the same stack)."""
    k = params.statement_probe_generations
    row = Row("DB", f"SQL statements per generation end to end ({k} one by one)", "statements/gen")
    log_path = postgres.server.log_path
    admin_url = postgres.server.url()
    quiet = "-c log_statement=none"
    owner = f"bench-statements-{uuid.uuid4().hex[:8]}"
    headers = ours.new_owner(owner)
    try:
        ours.settle()
    except verify.FigureFailed as exc:
        row.error = str(exc)
        return row
    with psycopg.connect(admin_url, autocommit=True, options=quiet) as admin:
        admin.execute("ALTER SYSTEM SET log_statement = 'all'")
        admin.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        try:
            idle_start, idle_offset = time.monotonic(), log_path.stat().st_size
            time.sleep(3)
            idle_rate = _statements_in(log_path, idle_offset) / (time.monotonic() - idle_start)
            probe_start, probe_offset = time.monotonic(), log_path.stat().st_size
            xid_before = stacks.xid_now(ours.database_url)
            for _ in range(k):
                stacks.create_one(ours.grpc_address, headers)
            _wait_final(ours.database_url, owner)
            writes = stacks.xid_now(ours.database_url) - xid_before - 1
            probe_s = time.monotonic() - probe_start
            statements = _statements_in(log_path, probe_offset)
        except verify.FigureFailed as exc:
            row.error = str(exc)
            return row
        finally:
            admin.execute("ALTER SYSTEM RESET log_statement")
            admin.execute("SELECT pg_reload_conf()")
    background = idle_rate * probe_s
    row.ours = Side(
        value=(statements - background) / k,
        db_writes_per_call=writes / k,
        detail=f"{statements} logged, {background:.0f} of them background",
        runs=[{"statements": statements, "background": background, "probe_s": probe_s, "writes": writes}],
    )
    return row


def _statements_in(log_path, offset: int) -> int:
    with open(log_path, "rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return sum(1 for line in text.splitlines() if "LOG:  statement: " in line or "LOG:  execute " in line)


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
