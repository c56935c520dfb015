"""Retry delays: capped exponential backoff with full jitter."""

from __future__ import annotations

import random


def backoff_ceiling(attempt: int, *, base_s: float, cap_s: float) -> float:
    """The largest delay after failed attempt `attempt` (1-based): base·2^(attempt-1), capped."""
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    return min(cap_s, base_s * 2 ** min(attempt - 1, 62))


def backoff_delay(attempt: int, *, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """A delay drawn uniformly from [0, ceiling] ("full jitter"), so that many
    generations failing together do not retry together."""
    ceiling = backoff_ceiling(attempt, base_s=base_s, cap_s=cap_s)
    return (rng or random).uniform(0, ceiling)
