"""Percentile and median math of the bench."""

from __future__ import annotations

import pytest

from bench.stats import latency_summary, median, percentile


def test_percentile_interpolates_between_ranks():
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    assert percentile(values, 50) == 25.0
    assert percentile(values, 99) == pytest.approx(39.7)


def test_percentile_ignores_order():
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0


def test_percentile_of_one_value_is_that_value():
    assert percentile([7.5], 99) == 7.5


def test_percentile_of_nothing_is_none():
    assert percentile([], 50) is None


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_out_of_range_is_refused(q):
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        percentile([1.0], q)


def test_median_skips_missing_values():
    assert median([3.0, None, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0]) == 1.5
    assert median([None]) is None


def test_latency_summary():
    summary = latency_summary([float(i) for i in range(1, 101)])
    assert summary["count"] == 100
    assert summary["p50_ms"] == 50.5
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert summary["max_ms"] == 100.0
    assert latency_summary([])["p99_ms"] is None
