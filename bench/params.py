"""How long and how much: a full run and a QUICK one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Params:
    repeats: int
    duration_s: float
    warmup_s: float
    # Fixed-rate (P3) runs are longer: at a few dozen calls a second a p99 needs samples.
    fixed_rate_duration_s: float
    e2e_generations: int
    # P5 (progress off) is a second end-to-end run: fewer, it compares rates.
    e2e_compare_generations: int
    # Rows that compare two meshes of ours (T, the workers row): their runs
    # (one run a side moved T between 0.6 and 1.3 on one machine in one day).
    mesh_repeats: int
    watch_streams: int
    watch_workers: int
    statement_probe_generations: int
    # The queue's rows (bench.queue_rows): cancels timed (C1), the window a
    # share is measured over (S2, S3), CPU time spent on each decision size (S4).
    queue_cancels: int
    queue_window_s: float
    queue_decision_s: float


FULL = Params(
    repeats=3,
    duration_s=3,
    warmup_s=1,
    fixed_rate_duration_s=7,
    e2e_generations=10_000,
    e2e_compare_generations=3_000,
    mesh_repeats=3,
    watch_streams=10_000,
    watch_workers=4,
    statement_probe_generations=20,
    queue_cancels=100,
    queue_window_s=30,
    queue_decision_s=2,
)
QUICK = Params(
    repeats=1,
    duration_s=2,
    warmup_s=0.5,
    fixed_rate_duration_s=3,
    e2e_generations=300,
    e2e_compare_generations=300,
    mesh_repeats=1,
    watch_streams=500,
    watch_workers=2,
    statement_probe_generations=10,
    queue_cancels=30,
    queue_window_s=12,
    queue_decision_s=0.5,
)
