"""The bench's table."""

from __future__ import annotations

import json
from collections import Counter

from bench.report import (
    COLUMNS,
    TARGET_COLUMNS,
    Row,
    Side,
    describe_codes,
    describe_statuses,
    fmt_cpu,
    fmt_number,
    fmt_ratio,
    markdown_table,
    render,
    write_json,
)


def test_numbers_keep_about_three_significant_digits():
    assert fmt_number(2776.4) == "2,776"
    assert fmt_number(57.06) == "57.1"
    assert fmt_number(0.4567) == "0.46"
    assert fmt_number(None) == "—"


def test_ratio_is_ours_over_echo():
    row = Row("P1", "create", "calls/s", echo=Side(value=2776.0), ours=Side(value=57.0))
    assert fmt_ratio(row.ratio) == "0.021x"
    assert fmt_ratio(Row("P3", "p99", "ms", echo=Side(value=66.0), ours=Side(value=541.0)).ratio) == "8.20x"
    assert fmt_ratio(12345 / 10) == "1,234x"


def test_no_ratio_without_both_sides():
    assert Row("P4", "e2e", "completions/s", ours=Side(value=64.0)).ratio is None
    assert Row("X", "x", "x", echo=Side(value=0.0), ours=Side(value=1.0)).ratio is None


def test_cpu_cell_names_processes_shortly_and_leaves_out_what_is_negligible():
    side = Side(value=1, cpu_ms_per_call={"api_server": 12.345, "postgres": 3.2, "callback_server": 0.001})
    assert fmt_cpu(side) == "api 12.35 pg 3.20"
    assert fmt_cpu(Side(value=1)) == "—"


def test_markdown_table_lines_up():
    table = markdown_table(["a", "bb"], [["xxx", "y"], ["z", "wwww"]])
    lines = table.splitlines()
    assert lines[0] == "| a   | bb   |"
    assert lines[1] == "|-----|------|"
    assert lines[2] == "| xxx | y    |"
    assert lines[3] == "| z   | wwww |"


def test_render_shows_each_row_and_lists_failures_and_notes():
    rows = [
        Row(
            "P1",
            "gRPC create",
            "calls/s",
            echo=Side(value=2776.0, p50_ms=40.0, p99_ms=66.0, cpu_ms_per_call={"echo_server": 0.4}),
            ours=Side(value=57.0, p50_ms=900.0, p99_ms=2400.0, db_writes_per_call=1.6, detail="at 28/s"),
        ),
        Row("P2", "JSON create", "calls/s", error="the server answered errors: {'UNAVAILABLE': 3}"),
    ]
    text = render(rows, ["machine shared"])
    header, _, first, second = text.splitlines()[:4]
    assert [cell.strip() for cell in header.strip("|").split("|")] == COLUMNS
    cells = [cell.strip() for cell in first.strip("|").split("|")]
    assert cells[:6] == ["P1", "gRPC create", "calls/s", "2,776", "57.0 (at 28/s)", "0.021x"]
    assert cells[6:] == ["40.0 / 66.0", "900 / 2,400", "echo 0.40", "—", "1.60"]
    assert "FAILED" in second
    assert "- P2 JSON create: the server answered errors: {'UNAVAILABLE': 3}" in text
    assert text.endswith("- machine shared")


def test_json_has_every_row_with_its_ratio(tmp_path):
    rows = [Row("P1", "gRPC create", "calls/s", echo=Side(value=100.0), ours=Side(value=25.0))]
    path = write_json(tmp_path / "out" / "results.json", rows=rows, notes=["n"], meta={"quick": True})
    payload = json.loads(path.read_text())
    assert payload["quick"] is True
    assert payload["notes"] == ["n"]
    assert payload["rows"][0]["ratio"] == 0.25
    assert payload["rows"][0]["ours"]["value"] == 25.0


def test_a_failed_row_with_measurements_keeps_them_and_says_failed():
    error = "creates answered {'UNAVAILABLE': 34}"
    row = Row("P4", "10,000 end to end", "completions/s", ours=Side(value=64.0), error=error)
    text = render([row], [])
    first = text.splitlines()[2]
    assert "FAILED: 10,000 end to end" in first
    assert "64.0" in first
    assert "- P4 10,000 end to end: creates answered {'UNAVAILABLE': 34}" in text


def test_status_codes_and_statuses_read_shortly():
    assert describe_codes(Counter({"OK": 5910, "CANCELLED": 4090})) == "CANCELLED 4,090, OK 5,910"
    assert describe_codes(Counter()) == "none"
    assert describe_statuses({"COMPLETE": 10000}) == "all 10,000 COMPLETE"
    assert describe_statuses({"COMPLETE": 9, "FAILED": 1}) == "COMPLETE 9, FAILED 1"


def test_a_pipe_inside_a_cell_does_not_split_it():
    assert markdown_table(["a|b"], [["x|y"]]).splitlines()[2] == "| x\\|y |"


def test_rows_with_targets_get_a_table_of_their_own_saying_whether_each_is_met():
    rows = [
        Row("P1", "gRPC create", "calls/s", echo=Side(value=100.0), ours=Side(value=25.0)),
        Row(
            "C1",
            "cancel to next start",
            "ms p99",
            ours=Side(value=42.0, p50_ms=20.0, p99_ms=42.0, detail="60 cancels"),
            target="≤ 100",
            met=True,
        ),
        Row("C2", "slot utilisation", "%", ours=Side(value=91.0), target="≥ 95", met=False),
    ]
    text = render(rows, [])
    tables = text.split("\n\n")
    assert [cell.strip() for cell in tables[0].splitlines()[0].strip("|").split("|")] == COLUMNS
    assert len(tables[0].splitlines()) == 3  # header, rule, P1
    assert [cell.strip() for cell in tables[1].splitlines()[0].strip("|").split("|")] == TARGET_COLUMNS
    c1, c2 = ([cell.strip() for cell in line.strip("|").split("|")] for line in tables[1].splitlines()[2:])
    assert c1 == ["C1", "cancel to next start", "ms p99", "42.0", "≤ 100", "yes", "20.0 / 42.0", "60 cancels"]
    assert c2[:6] == ["C2", "slot utilisation", "%", "91.0", "≥ 95", "NO"]
    assert "TARGET MISSED:\n- C2 slot utilisation: 91.0, target ≥ 95" in text
    assert "FAILED" not in text
