"""python -m bench [--quick] [--only queue]: every figure, echo beside ours;
then the queue's rows, each against its target.

Starts its own PostgreSQL, meshes, echo servers and Envoys on free ports,
stops them all at the end, prints Markdown tables and writes the results
to .bench/results-<timestamp>.json. Exits 1 if any figure failed or
missed its target.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import end_to_end, queue_rows, report, stacks, telemetry_cost, throughput, tools, watch_fanout
from bench.params import FULL, QUICK, Params
from bench.report import Row

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / ".bench"
# What --only runs.
ONLY = ("queue",)


def machine_state() -> dict:
    return {
        "cores": os.cpu_count(),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def run_figures(params: Params, run_dir: Path, progress, only: str | None = None) -> list[Row]:
    if only == "queue":
        with stacks.Postgres() as postgres:
            return queue_rows.queue_rows(postgres, run_dir, params, progress)
    rows: list[Row] = []

    def add(new: Row | list[Row]) -> None:
        for row in new if isinstance(new, list) else [new]:
            rows.append(row)
            progress(row)

    # The mock AI at delay 0, one image a generation, as many slots as it
    # takes and no cap on an owner's running generations: it really renders
    # (Pillow), which would otherwise bound every figure that creates.
    ours_env = {
        "MOCK_AI_MIN_DELAY_S": "0",
        "MOCK_AI_MAX_DELAY_S": "0",
        "MOCK_AI_IMAGES_PER_GENERATION": "1",
        "MOCK_AI_SLOTS": str(stacks.AMPLE_SLOTS),
        "MAX_RUNNING_PER_OWNER": str(stacks.UNCAPPED_PENDING),
    }
    # Watches need a generation that stays PENDING until the bench makes it final.
    watch_env = {"MOCK_AI_MIN_DELAY_S": "3600", "MOCK_AI_MAX_DELAY_S": "3600", "COMPLETION_DEADLINE_S": "3600"}
    with (
        stacks.Postgres() as postgres,
        stacks.EchoTarget(run_dir, label="echo", with_envoy=True) as echo,
        stacks.EchoTarget(run_dir, label="echo logged", log_rpcs=True) as echo_logged,
    ):
        with stacks.MeshTarget(postgres, run_dir, label="ours", env=ours_env) as ours:
            readable = {echo.label: "00000000-0000-4000-8000-000000000000"}
            readable[ours.label] = stacks.create_one(ours.grpc_address, ours.headers)
            loads = throughput.throughput_loads(lambda target: readable[target.label])
            maxima = []
            for load in loads:
                maxima.append(throughput.compare(load, echo, ours, params))
                add(maxima[-1])
            add(throughput.log_cost(echo, echo_logged, params))
            for load, max_row in zip(loads, maxima, strict=True):
                add(throughput.latency_at_half(load, max_row, echo, ours, params))
            add(end_to_end.end_to_end(ours, params))
            add(end_to_end.statements_per_generation(postgres, ours, params))
            with (
                telemetry_cost.OtlpSink() as sink,
                stacks.MeshTarget(postgres, run_dir, label="ours-traced", env={**ours_env, **sink.env}) as traced,
            ):
                add(telemetry_cost.telemetry_cost(ours, traced, sink, params))
        # The same end to end without the AI's progress reports: what writing them costs.
        quiet_env = {**ours_env, "MOCK_AI_PROGRESS_REPORTS": "false"}
        with stacks.MeshTarget(postgres, run_dir, label="ours-no-progress", env=quiet_env) as quiet:
            add(
                end_to_end.end_to_end(
                    quiet, params, key="P5", note="progress reports off", generations=params.e2e_compare_generations
                )
            )
        # The same creates with the api_server as one worker process per core (SO_REUSEPORT).
        workers = max(2, min(os.cpu_count() or 1, 4))
        workers_env = {**ours_env, "API_SERVER_WORKERS": str(workers)}
        with stacks.MeshTarget(postgres, run_dir, label="ours-workers", env=workers_env, with_envoy=False) as many:
            create = loads[0]
            row = throughput.compare(create, echo, many, dataclasses.replace(params, repeats=params.mesh_repeats))
            row.figure = f"{create.figure}; api_server as {workers} worker processes"
            add(row)
        with stacks.MeshTarget(postgres, run_dir, label="ours-watch", env=watch_env, with_envoy=False) as watched:
            add(watch_fanout.watch_rows(echo, watched, params))
        rows += queue_rows.queue_rows(postgres, run_dir, params, progress)
    return rows


def other_work_share(rows: list[Row]) -> float | None:
    """The share of the machine's CPU that went to work other than the bench's
    during the timed runs: all busy time less the metered processes and the load generator."""
    busy = total = 0.0
    for row in rows:
        for side in (row.echo, row.ours):
            for run in side.runs if side else ():
                if "machine_total_s" in run:
                    metered = sum(run["cpu_s"].values()) + run.get("loadgen_cpu_s", 0.0)
                    busy += max(0.0, run["machine_busy_s"] - metered)
                    total += run["machine_total_s"]
    return busy / total if total else None


def notes(params: Params, quick: bool, elapsed_s: float, machine: dict, only: str | None = None) -> list[str]:
    start, end, share = machine["start"], machine["end"], machine["other_work_share"]
    other = f"{share:.0%}" if share is not None else "unknown"
    load = (
        f"machine: {start['cores']} cores shared with other work; load average {' '.join(start['loadavg'])} "
        f"at start, {' '.join(end['loadavg'])} at end"
    )
    queue = queue_rows.NOTE
    if only == "queue":
        return [f"{'QUICK' if quick else 'full'} run of the queue's rows, {elapsed_s:.0f} s", queue, load]
    return [
        f"{'QUICK' if quick else 'full'} run, {elapsed_s:.0f} s; {params.repeats} run(s) of each side back to back, "
        f"echo first; {params.duration_s:g} s each after {params.warmup_s:g} s warm-up (fixed rate: "
        f"{params.fixed_rate_duration_s:g} s); values are medians, CPU is over all runs",
        f"raised for the bench: MAX_PENDING_PER_OWNER={stacks.UNCAPPED_PENDING:,}; Envoy's rate limits "
        f"(ENVOY_RATE_LIMIT_*) {stacks.UNCAPPED_RPS:,}/s, echo and ours alike; outside the queue's rows, "
        f"MAX_RUNNING_PER_OWNER={stacks.UNCAPPED_PENDING:,} and one AI worker of {stacks.AMPLE_SLOTS:,} slots",
        "ours = api_server + PostgreSQL (fsync on) + mock AI (delay 0; it renders one 64x64 PNG a "
        "generation: creates ask for the smallest size) + callback_server, Envoy for JSON; "
        "echo = bench.echo_server (no database, no auth), the same Envoy config for JSON",
        "CPU ms/call: api=api_server, pg=all PostgreSQL processes, ai=mock AI, cb=callback_server, "
        "gen=load generator; db writes = transactions that wrote (xids consumed) per call",
        queue,
        f"{load}; CPU busy outside the measured processes during the timed runs: {other} of the machine",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs")
    parser.add_argument("--only", choices=ONLY, help="only these rows (queue: C1-C4, S1-S4, a few minutes)")
    args = parser.parse_args(argv)
    params = QUICK if args.quick else FULL
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = OUT_DIR / f"run-{stamp}"
    # The load generators (the queue's rows need none).
    versions = tools.ensure_installed() if args.only is None else {}
    start_state = machine_state()

    def progress(row: Row) -> None:
        status = f"echo {report.fmt_value(row.echo)}, ours {report.fmt_value(row.ours)}"
        if row.target is not None:
            status = f"{report.fmt_value(row.ours)}; target {row.target}: {report.fmt_met(row.met)}"
        if row.error:
            status = f"FAILED: {row.error}; {status}"
        print(f"[{time.monotonic() - started:5.0f} s] {row.key} {row.figure}: {status}", flush=True)

    rows = run_figures(params, run_dir, progress, args.only)
    elapsed = time.monotonic() - started
    machine = {"start": start_state, "end": machine_state(), "other_work_share": other_work_share(rows)}
    run_notes = notes(params, args.quick, elapsed, machine, args.only)
    print()
    print(report.render(rows, run_notes))
    path = report.write_json(
        OUT_DIR / f"results-{stamp}.json",
        rows=rows,
        notes=run_notes,
        meta={
            "started": stamp,
            "quick": args.quick,
            "only": args.only,
            "params": dataclasses.asdict(params),
            "tools": versions,
            "machine": machine,
            "elapsed_s": elapsed,
            "logs": str(run_dir),
        },
    )
    print(f"\nresults: {path.relative_to(ROOT)}; logs: {run_dir.relative_to(ROOT)}")
    return 1 if any(row.error or row.met is False for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
