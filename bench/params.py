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
)
