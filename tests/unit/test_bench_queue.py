"""What the queue's bench rows compute from their samples and rows."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from bench.queue_rows import Sample, more_than_once, rendered_after_cancel, slot_seconds, utilisation
from bench.report import Side
from bench.targets import at_least, at_most, judged, near

A, B = uuid.UUID(int=1), uuid.UUID(int=2)


def test_utilisation_counts_only_the_samples_taken_while_something_was_queued():
    samples = [
        Sample(queued=5, running={A: 4, B: 2}, slots={A: 4, B: 4}),  # 6 of 8
        Sample(queued=1, running={A: 4, B: 4}, slots={A: 4, B: 4}),  # 8 of 8
        Sample(queued=0, running={}, slots={A: 4, B: 4}),  # nothing waits: not counted
    ]
    assert utilisation(samples) == pytest.approx((6 / 8 + 1) / 2)


def test_a_worker_counts_at_most_its_slots_and_an_idle_one_counts_as_idle():
    # A finished job still RUNNING in the rows beside the one in its slot does
    # not make up for the other worker's idle slots.
    assert utilisation([Sample(queued=3, running={A: 5}, slots={A: 4, B: 4})]) == pytest.approx(0.5)


def test_no_utilisation_without_a_queue():
    assert utilisation([Sample(queued=0, running={A: 1}, slots={A: 4})]) is None
    assert utilisation([]) is None


def test_slot_seconds_clip_each_job_to_the_window():
    jobs = [(0.0, 2.0), (1.0, 3.0), (4.0, 9.0), (10.0, 11.0), (-5.0, 20.0)]
    # within [1, 5]: 1 + 2 + 1 + 0 + 4
    assert slot_seconds(jobs, 1.0, 5.0) == pytest.approx(8.0)
    assert slot_seconds([], 0.0, 1.0) == 0


def test_a_cancelled_generation_counts_as_rendered_if_any_trace_of_its_work_is_left():
    cancelled = ["a", "b", "c", "d"]
    left = rendered_after_cancel(
        cancelled,
        results=Counter({"b": 1}),
        deliveries=Counter({"c": 1, "other": 3}),
        files=lambda gid: gid == "d",
    )
    assert left == ["b", "c", "d"]
    assert rendered_after_cancel(cancelled, Counter(), Counter(), lambda gid: False) == []


def test_given_a_result_twice_names_each_generation_once():
    assert more_than_once(["a", "b", "a", "c", "a", "b"]) == ["a", "b"]
    assert more_than_once(["a", "b"]) == []


def test_goals_judge_the_measured_value():
    assert at_most(100, "≤ 100").check(100) and not at_most(100, "≤ 100").check(100.5)
    assert at_least(95, "≥ 95").check(95) and not at_least(95, "≥ 95").check(94.9)
    three_to_one = near(3.0, 0.10, "3:1 ± 10%")
    assert three_to_one.check(2.71) and three_to_one.check(3.29)
    assert not three_to_one.check(2.69) and not three_to_one.check(3.31)


def test_a_judged_row_carries_its_target_and_whether_it_is_met():
    row = judged("C2", "utilisation", "%", at_least(95, "≥ 95%"), Side(value=91.0))
    assert (row.target, row.met, row.echo) == ("≥ 95%", False, None)
    assert judged("C2", "utilisation", "%", at_least(95, "≥ 95%"), Side(value=None)).met is None
