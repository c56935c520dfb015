"""The results: one Markdown table on the terminal, everything in a JSON file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Short process names for the CPU column.
SHORT_NAMES = {
    "api_server": "api",
    "postgres": "pg",
    "envoy": "envoy",
    "mock_ai_server": "ai",
    "callback_server": "cb",
    "echo_server": "echo",
    "echo_server_logged": "echo",
    "loadgen": "gen",
}
COLUMNS = ["#", "figure", "unit", "echo", "ours", "ours/echo", "p50/p99 ms echo", "p50/p99 ms ours"]
COLUMNS += ["CPU ms/call echo", "CPU ms/call ours", "db writes/call ours"]
# Rows measured against a target of their own (no echo): the queue's.
TARGET_COLUMNS = ["#", "figure", "unit", "measured", "target", "met", "p50/p99 ms", "detail"]
# CPU below this many ms per call is left out of the table (not the JSON).
CPU_SHOWN_FROM_MS = 0.005


@dataclass
class Side:
    """One side (echo or ours) of a figure, over its runs."""

    value: float | None
    p50_ms: float | None = None
    p99_ms: float | None = None
    # CPU milliseconds per call, by process; "loadgen" is the load generator.
    cpu_ms_per_call: dict[str, float] = field(default_factory=dict)
    # Transactions that wrote to the database, per call.
    db_writes_per_call: float | None = None
    # What qualifies the value ("at 28/s", "held 9,990").
    detail: str = ""
    runs: list[dict] = field(default_factory=list)


@dataclass
class Row:
    key: str
    figure: str
    unit: str
    echo: Side | None = None
    ours: Side | None = None
    error: str | None = None
    # A row with a target says what the measured value (ours) must be, and
    # whether it is; such a row has no echo side.
    target: str | None = None
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.echo is None or self.ours is None or not self.echo.value or self.ours.value is None:
            return None
        return self.ours.value / self.echo.value


def fmt_number(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    if ratio < 0.1:
        return f"{ratio:.3f}x"
    if ratio < 10:
        return f"{ratio:.2f}x"
    return f"{ratio:,.0f}x"


def fmt_latency(side: Side | None) -> str:
    if side is None or (side.p50_ms is None and side.p99_ms is None):
        return "—"
    return f"{fmt_number(side.p50_ms)} / {fmt_number(side.p99_ms)}"


def fmt_cpu(side: Side | None) -> str:
    if side is None or not side.cpu_ms_per_call:
        return "—"
    shown = {name: ms for name, ms in side.cpu_ms_per_call.items() if ms >= CPU_SHOWN_FROM_MS}
    return " ".join(f"{SHORT_NAMES.get(name, name)} {ms:.2f}" for name, ms in shown.items()) or "0"


def fmt_value(side: Side | None) -> str:
    if side is None:
        return "—"
    text = fmt_number(side.value)
    return f"{text} ({side.detail})" if side.detail else text


def describe_statuses(statuses: dict[str, int]) -> str:
    """Either "all 500 COMPLETE" or each status's count."""
    if set(statuses) == {"COMPLETE"}:
        return f"all {statuses['COMPLETE']:,} COMPLETE"
    return ", ".join(f"{status} {count:,}" for status, count in sorted(statuses.items()))


def describe_codes(codes: dict[str, int]) -> str:
    """Status codes and their counts, "none" for none."""
    return ", ".join(f"{code} {count:,}" for code, count in sorted(codes.items()) if count) or "none"


def table_rows(rows: list[Row]) -> list[list[str]]:
    cells = []
    for row in rows:
        if row.error and row.echo is None and row.ours is None:
            cells.append([row.key, row.figure, row.unit, "FAILED", "FAILED", *["—"] * (len(COLUMNS) - 5)])
            continue
        cells.append(
            [
                row.key,
                f"FAILED: {row.figure}" if row.error else row.figure,
                row.unit,
                fmt_value(row.echo),
                fmt_value(row.ours),
                fmt_ratio(row.ratio),
                fmt_latency(row.echo),
                fmt_latency(row.ours),
                fmt_cpu(row.echo),
                fmt_cpu(row.ours),
                fmt_number(row.ours.db_writes_per_call) if row.ours else "—",
            ]
        )
    return cells


def fmt_met(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "NO")


def target_table_rows(rows: list[Row]) -> list[list[str]]:
    cells = []
    for row in rows:
        measured = row.ours
        cells.append(
            [
                row.key,
                f"FAILED: {row.figure}" if row.error else row.figure,
                row.unit,
                fmt_number(measured.value) if measured else "—",
                row.target or "",
                fmt_met(row.met),
                fmt_latency(measured),
                measured.detail if measured else "",
            ]
        )
    return cells


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A pipe table padded to line up in a terminal (and valid Markdown)."""
    header, rows = [_cell(c) for c in header], [[_cell(c) for c in row] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (width + 2) for width in widths) + "|", *map(line, rows)])


def render(rows: list[Row], notes: list[str]) -> str:
    """The comparisons with the echo, then the rows with targets of their own."""
    compared = [row for row in rows if row.target is None]
    targeted = [row for row in rows if row.target is not None]
    tables = [markdown_table(COLUMNS, table_rows(compared))] if compared else []
    if targeted:
        tables.append(markdown_table(TARGET_COLUMNS, target_table_rows(targeted)))
    text = "\n\n".join(tables)
    failures = [f"{row.key} {row.figure}: {row.error}" for row in rows if row.error]
    if failures:
        text += "\n\nFAILED:\n" + "\n".join(f"- {failure}" for failure in failures)
    missed = [f"{row.key} {row.figure}: {fmt_value(row.ours)}, target {row.target}" for row in rows if row.met is False]
    if missed:
        text += "\n\nTARGET MISSED:\n" + "\n".join(f"- {line}" for line in missed)
    if notes:
        text += "\n\n" + "\n".join(f"- {note}" for note in notes)
    return text


def write_json(path: Path, *, rows: list[Row], notes: list[str], meta: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**meta, "notes": notes, "rows": [{**asdict(row), "ratio": row.ratio} for row in rows]}
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path
