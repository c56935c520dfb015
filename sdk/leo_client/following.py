"""Following a generation to its end, the part both clients share.

A client watches the generation (WatchGeneration); if the stream breaks it
polls GetGeneration with `Backoff` until the generation is final or the
wait's deadline passes. `Follower` holds the state of one such wait: the
last state seen, the deadline, and what a final state means.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from leo_client.errors import ApiError, GenerationCancelled, GenerationFailed, WaitTimeout
from leo_client.types import Generation, Status

DEFAULT_WAIT_TIMEOUT_S = 600.0


class Backoff:
    """Delays between polls: exponential up to a cap, each drawn with jitter from
    the upper half of its step, so many clients do not poll in step."""

    def __init__(self, first_s: float = 0.25, cap_s: float = 5.0, *, rng: random.Random | None = None) -> None:
        self._next = first_s
        self._cap = cap_s
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The delay before the next poll; each step doubles up to the cap."""
        step = self._next
        self._next = min(self._next * 2, self._cap)
        return self._rng.uniform(step / 2, step)


def final_result(generation: Generation) -> Generation:
    """The generation if it COMPLETEd; GenerationFailed or GenerationCancelled otherwise."""
    if generation.status is Status.FAILED:
        raise GenerationFailed(generation)
    if generation.status is Status.CANCELLED:
        raise GenerationCancelled(generation)
    return generation


class Follower:
    """The state of one wait for a generation to end."""

    def __init__(self, timeout: float | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.last: Generation | None = None
        self._timeout = timeout
        self._clock = clock
        self._deadline = None if timeout is None else clock() + timeout
        self.backoff = Backoff()

    def remaining(self) -> float | None:
        """Seconds left to wait (None: no limit); WaitTimeout once none are left."""
        if self._deadline is None:
            return None
        left = self._deadline - self._clock()
        if left <= 0:
            raise self.timed_out()
        return left

    def timed_out(self) -> WaitTimeout:
        """The error for a wait that ran out of time."""
        return WaitTimeout(self.last, self._timeout or 0.0)

    def seen(self, generation: Generation) -> bool:
        """Record a state; True when it differs from the last one seen."""
        changed = generation != self.last
        self.last = generation
        return changed

    def call_failed(self, error: ApiError) -> None:
        """Decide what a broken watch or a failed poll means: after a transient error
        polling goes on; once the wait's own deadline passed, WaitTimeout; anything else is raised."""
        self.remaining()
        if not error.transient:
            raise error

    def next_poll_delay(self) -> float:
        """How long to sleep before the next poll (never past the deadline); WaitTimeout once it passed."""
        delay = self.backoff.next_delay()
        left = self.remaining()
        return delay if left is None else min(delay, left)

    def call_timeout(self, rpc_timeout: float) -> float:
        """The deadline of one call made while waiting: the call's own, cut to the time left."""
        left = self.remaining()
        return rpc_timeout if left is None else min(rpc_timeout, left)
