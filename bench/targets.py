"""Rows measured against a target of their own: what the value must be,
and whether it is (bench.report shows them in a table of their own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.report import Row, Side


@dataclass(frozen=True)
class Goal:
    """What a row's measured value must be: shown as `text`."""

    text: str
    check: Callable[[float], bool]


def at_most(limit: float, text: str) -> Goal:
    return Goal(text, lambda value: value <= limit)


def at_least(limit: float, text: str) -> Goal:
    return Goal(text, lambda value: value >= limit)


def near(expected: float, tolerance: float, text: str) -> Goal:
    """Within `tolerance` (a fraction) of `expected`."""
    return Goal(text, lambda value: abs(value - expected) <= tolerance * expected)


def judged(key: str, figure: str, unit: str, goal: Goal, side: Side) -> Row:
    met = None if side.value is None else goal.check(side.value)
    return Row(key, figure, unit, ours=side, target=goal.text, met=met)


def failed(key: str, figure: str, unit: str, target: str, error: str) -> Row:
    """A row that could not be measured: its target, and why."""
    return Row(key, figure, unit, target=target, error=error)
