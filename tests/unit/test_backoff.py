"""The retry schedule (pure logic)."""

import random

import pytest

from leo_mesh.backoff import backoff_ceiling, backoff_delay


def test_ceiling_doubles_from_base_then_caps():
    ceilings = [backoff_ceiling(n, base_s=0.5, cap_s=5) for n in range(1, 8)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 5, 5, 5]


def test_huge_attempt_numbers_stay_capped():
    assert backoff_ceiling(10_000, base_s=1, cap_s=60) == 60


def test_attempts_are_one_based():
    with pytest.raises(ValueError):
        backoff_ceiling(0, base_s=1, cap_s=2)


@pytest.mark.parametrize("attempt", [1, 2, 3, 6, 20])
def test_delay_is_full_jitter_within_bounds(attempt):
    rng = random.Random(attempt)
    ceiling = backoff_ceiling(attempt, base_s=1, cap_s=30)
    delays = [backoff_delay(attempt, base_s=1, cap_s=30, rng=rng) for _ in range(2000)]
    assert all(0 <= d <= ceiling for d in delays)
    # Full jitter spreads over the whole range, not only near the ceiling.
    assert min(delays) < 0.05 * ceiling
    assert max(delays) > 0.95 * ceiling
    assert abs(sum(delays) / len(delays) - ceiling / 2) < 0.05 * ceiling
