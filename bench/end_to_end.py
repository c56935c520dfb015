"""P4, generations from create to COMPLETE, and the SQL statements one costs."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import psycopg

from bench import stacks, stats, verify
from bench.calls import CREATE, H2LOAD_CLIENTS, H2LOAD_STREAMS, SERVICE_PATH
from bench.loadgen import GRPC_HEADERS, H2load, LoadGeneratorError, grpc_frame
from bench.params import Params
from bench.procstat import CpuMeter
from bench.report import Row, Side, describe_statuses


@dataclass
class EndToEnd:
    created: int
    statuses: dict[str, int]
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)


def end_to_end(
    ours: stacks.MeshTarget, params: Params, *, key: str = "P4", note: str = "", generations: int | None = None
) -> Row:
    """P4: N creates as fast as they are taken (h2load -n), then until none
    is PENDING; completions/s and create→complete from the rows' own times.
    Fails, with its figures, unless every create succeeded and every
    generation is COMPLETE. `note` says how the target differs (P5)."""
    n = generations or params.e2e_generations
    row = Row(key, f"{n:,} generations end to end, mock AI delay 0{', ' + note if note else ''}", "completions/s")
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
