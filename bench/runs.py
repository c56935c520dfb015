"""One checked load run against one side of a figure, and the medians over runs.

A run: wait until neither side has work left over, meter CPU of the side's
processes, note what the server has served and how many transactions wrote,
run the load, wait until the work the calls set off is done, then check the
load generator's count against the server's (bench.verify).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from bench import stacks, stats, verify
from bench.loadgen import H2load, LoadResult, Wrk
from bench.procstat import CpuMeter
from bench.report import Side


@dataclass
class Run:
    """One load run against one side, checked."""

    load: LoadResult
    served_ok: int
    cpu_s: dict[str, float]
    writes: int | None
    machine_busy_s: float
    machine_total_s: float

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
