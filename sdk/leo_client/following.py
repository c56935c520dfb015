"""Following a generation to its end, the part both clients share.

A client watches the generation (WatchGeneration) and reads the stream to
its end: the server ends it after the final state. A stream that breaks
before, or that cannot be opened, is watched again with `Backoff` (the
first message of a new stream is the current state, so nothing is lost):
for at most the reconnect bound once the server had answered this wait;
before any answer, for FIRST_ANSWER_TIMEOUT_S and silently, as the channel
retries any other call, then the error is raised as any call's would be.
`Follower` holds the state of one such wait: the last state seen, the
deadlines, the tries since the connection was lost, and what a final state
means. `Reconnecting` and `Reconnected` tell a caller what the connection
does while it waits.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import grpc

from leo_client.errors import (
    ApiError,
    ConnectionLost,
    GenerationCancelled,
    GenerationFailed,
    ServerError,
    WaitTimeout,
)
from leo_client.types import Generation, Status

DEFAULT_WAIT_TIMEOUT_S = 600.0
DEFAULT_RECONNECT_TIMEOUT_S = 60.0
FIRST_ANSWER_TIMEOUT_S = 3.0
"""How long a wait the server has not answered yet tries to open its watch:
about what the channel's retries give every other call (channel.py)."""


class Backoff:
    """Delays between tries: exponential up to a cap, each drawn with jitter from
    the upper half of its step, so many clients do not try in step."""

    def __init__(self, first_s: float = 0.25, cap_s: float = 5.0, *, rng: random.Random | None = None) -> None:
        self._next = first_s
        self._cap = cap_s
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The delay before the next try; each step doubles up to the cap."""
        step = self._next
        self._next = min(self._next * 2, self._cap)
        return self._rng.uniform(step / 2, step)


@dataclass(frozen=True)
class Reconnecting:
    """The watch broke (or could not be opened again); another try follows."""

    error: ApiError
    """Why: how the stream ended, or how the last try failed."""
    attempt: int
    """The try about to be made, 1 for the first since the connection was lost."""
    delay_s: float
    """Seconds until that try."""
    gives_up_in_s: float
    """Seconds left before the wait gives up reconnecting (ConnectionLost)."""


@dataclass(frozen=True)
class Reconnected:
    """A watch answered again after the connection was lost."""

    attempts: int
    """The tries it took."""
    outage_s: float
    """Seconds from losing the connection to the first answer."""


ConnectionEvent = Reconnecting | Reconnected


class Retry(NamedTuple):
    """What to do after a lost watch: sleep `delay_s`, then watch again;
    `event` is what to tell the caller (None: nothing, the server never answered)."""

    delay_s: float
    event: Reconnecting | None


OnConnection = Callable[[ConnectionEvent], object]
"""Called with each `Reconnecting` and `Reconnected` of a wait."""


def final_result(generation: Generation) -> Generation:
    """The generation if it COMPLETEd; GenerationFailed or GenerationCancelled otherwise."""
    if generation.status is Status.FAILED:
        raise GenerationFailed(generation)
    if generation.status is Status.CANCELLED:
        raise GenerationCancelled(generation)
    return generation


def ended_early() -> ApiError:
    """The error for a stream that ended without an error and without a final state."""
    return ServerError(grpc.StatusCode.UNKNOWN, "the watch ended before the generation's final state")


class Follower:
    """The state of one wait for a generation to end."""

    def __init__(
        self,
        timeout: float | None,
        *,
        reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.last: Generation | None = None
        self._timeout = timeout
        self._reconnect_timeout = reconnect_timeout
        self._clock = clock
        self._deadline = None if timeout is None else clock() + timeout
        self._answered = False
        self._lost_at: float | None = None
        self._attempts = 0
        self._backoff = Backoff()

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

    def answered(self) -> Reconnected | None:
        """The server answered (a state came): the connection works. Returns
        `Reconnected` when it had been lost after an earlier answer; the
        next loss starts afresh."""
        before, self._answered = self._answered, True
        if self._lost_at is None:
            return None
        back = Reconnected(attempts=self._attempts, outage_s=self._clock() - self._lost_at) if before else None
        self._lost_at, self._attempts, self._backoff = None, 0, Backoff()
        return back

    def seen(self, generation: Generation) -> bool:
        """Record a state; True when it differs from the last one seen."""
        changed = generation != self.last
        self.last = generation
        return changed

    def lost(self, error: ApiError) -> Retry:
        """The watch broke, or a try to open it failed: when to try again.

        Raises instead: WaitTimeout once the wait's own deadline passed; the
        error itself when it is not transient, or when the server has not
        answered this wait within FIRST_ANSWER_TIMEOUT_S; ConnectionLost once
        a connection that had answered has been lost for the reconnect bound.
        """
        left = self.remaining()
        if not error.transient:
            raise error
        now = self._clock()
        if self._lost_at is None:
            self._lost_at = now
        lost_for = now - self._lost_at
        bound = self._reconnect_timeout if self._answered else min(FIRST_ANSWER_TIMEOUT_S, self._reconnect_timeout)
        budget = bound - lost_for
        if budget <= 0:
            if not self._answered or self.last is None:
                raise error
            raise ConnectionLost(self.last, error, attempts=self._attempts, lost_for_s=lost_for)
        self._attempts += 1
        delay = min(self._backoff.next_delay(), budget, left if left is not None else budget)
        event = Reconnecting(error=error, attempt=self._attempts, delay_s=delay, gives_up_in_s=budget)
        return Retry(delay, event if self._answered else None)
