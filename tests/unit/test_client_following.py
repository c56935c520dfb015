"""Following a generation (pure logic): reconnect backoff and bound, the wait's deadline, what a final state means."""

from __future__ import annotations

import random

import grpc
import pytest

from leo.generation.v1 import generation_pb2
from leo_client import ConnectionLost, Generation, GenerationCancelled, GenerationFailed, Unavailable, WaitTimeout
from leo_client.errors import from_status
from leo_client.following import FIRST_ANSWER_TIMEOUT_S, Backoff, Follower, Reconnected, final_result


def generation(status=generation_pb2.STATUS_PENDING, **fields) -> Generation:
    return Generation.from_proto(generation_pb2.Generation(generation_id="g-1", status=status, **fields))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half():
    backoff = Backoff(first_s=0.25, cap_s=2.0, rng=random.Random(7))
    steps = [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    for step in steps:
        assert step / 2 <= backoff.next_delay() <= step


def test_a_complete_generation_is_the_result():
    done = generation(generation_pb2.STATUS_COMPLETE)
    assert final_result(done) is done


def test_a_failed_generation_raises_with_its_reason():
    failed = generation(generation_pb2.STATUS_FAILED, failure_reason="the model crashed")
    with pytest.raises(GenerationFailed) as caught:
        final_result(failed)
    assert caught.value.reason == "the model crashed"
    assert caught.value.generation is failed
    assert "the model crashed" in str(caught.value)


def test_a_cancelled_generation_raises():
    with pytest.raises(GenerationCancelled) as caught:
        final_result(generation(generation_pb2.STATUS_CANCELLED))
    assert caught.value.generation.id == "g-1"


def test_only_changed_states_count_as_updates():
    follower = Follower(None)
    assert follower.seen(generation())
    assert not follower.seen(generation())
    assert follower.seen(generation(attempts=1))
    assert follower.last == generation(attempts=1)


def test_the_deadline_ends_the_wait_with_the_last_state():
    clock = Clock()
    follower = Follower(10, clock=clock)
    follower.seen(generation(attempts=1))
    assert follower.remaining() == 10
    clock.now += 10
    with pytest.raises(WaitTimeout) as caught:
        follower.remaining()
    assert caught.value.generation == generation(attempts=1)
    assert isinstance(caught.value, TimeoutError)


def test_without_a_timeout_the_wait_has_no_deadline():
    assert Follower(None).remaining() is None


def answered(follower: Follower, state: Generation | None = None) -> Follower:
    """The follower after the server's first answer."""
    assert follower.answered() is None
    follower.seen(state or generation())
    return follower


REFUSED = from_status(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; Connection refused")


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL]
)
def test_a_transient_break_after_an_answer_is_retried_and_says_why(code):
    error = from_status(code, "stream reset")
    delay, reconnecting = answered(Follower(None, reconnect_timeout=60)).lost(error)
    assert reconnecting is not None and reconnecting.error is error and reconnecting.attempt == 1
    assert 0.125 <= delay == reconnecting.delay_s <= 0.25 and reconnecting.gives_up_in_s == 60


def test_a_wait_the_server_never_answered_fails_as_any_call_does():
    """`leo watch ID` with the API down: quiet tries for about as long as the
    channel retries any other call, then that call's error (exit 5)."""
    clock = Clock()
    follower = Follower(None, reconnect_timeout=60, clock=clock)
    tries = 0
    with pytest.raises(Unavailable) as caught:
        while True:
            delay, event = follower.lost(REFUSED)
            assert event is None
            tries += 1
            clock.now += delay
    assert caught.value is REFUSED and clock.now - 100 == pytest.approx(FIRST_ANSWER_TIMEOUT_S) and tries >= 3


def test_a_first_answer_after_quiet_tries_is_no_reconnect():
    follower = Follower(None, reconnect_timeout=60)
    follower.lost(REFUSED)
    assert follower.answered() is None
    _, reconnecting = follower.lost(REFUSED)
    assert reconnecting is not None and reconnecting.attempt == 1 and reconnecting.gives_up_in_s == 60


@pytest.mark.parametrize("code", [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED])
def test_other_errors_end_the_wait(code):
    error = from_status(code, "no")
    with pytest.raises(type(error)):
        answered(Follower(None)).lost(error)


def test_reconnects_back_off_until_the_bound_then_the_connection_is_lost():
    clock = Clock()
    follower = answered(Follower(None, reconnect_timeout=10, clock=clock), generation(attempts=1, progress=30))
    tries = []
    with pytest.raises(ConnectionLost) as caught:
        while True:
            _, reconnecting = follower.lost(REFUSED)
            tries.append(reconnecting)
            clock.now += reconnecting.delay_s + 3  # each try fails after the connect attempt
    assert [t.attempt for t in tries] == list(range(1, len(tries) + 1)) and len(tries) >= 3
    assert all(t.delay_s <= t.gives_up_in_s for t in tries)
    assert [t.gives_up_in_s for t in tries] == sorted((t.gives_up_in_s for t in tries), reverse=True)
    # It backs off: each step's jitter is drawn from the upper half of a
    # step twice the last one's (the last try is cut to the time left).
    assert tries[1].delay_s > tries[0].delay_s
    lost = caught.value
    assert isinstance(lost, Unavailable) and lost.last_error is REFUSED and lost.attempts == len(tries)
    assert lost.generation == generation(attempts=1, progress=30) and lost.lost_for_s >= 10
    assert "g-1" in str(lost) and "Connection refused" in str(lost)


def test_an_answer_after_reconnecting_says_so_and_restores_the_whole_bound():
    clock = Clock()
    follower = answered(Follower(None, reconnect_timeout=10, clock=clock))
    follower.lost(REFUSED)
    clock.now += 4
    follower.lost(REFUSED)
    clock.now += 5
    assert follower.answered() == Reconnected(attempts=2, outage_s=9)
    assert follower.answered() is None
    clock.now += 100
    _, again = follower.lost(REFUSED)
    assert again is not None and again.attempt == 1 and again.gives_up_in_s == 10 and again.delay_s <= 0.25


def test_a_zero_bound_never_reconnects():
    with pytest.raises(ConnectionLost):
        answered(Follower(None, reconnect_timeout=0)).lost(REFUSED)


def test_the_wait_deadline_wins_over_reconnecting():
    clock = Clock()
    follower = answered(Follower(5, reconnect_timeout=60, clock=clock))
    assert follower.lost(REFUSED).delay_s <= 0.25
    clock.now += 4.9
    assert follower.lost(REFUSED).delay_s <= 0.1 + 1e-9  # never sleeps past the deadline
    clock.now += 0.1
    with pytest.raises(WaitTimeout):
        follower.lost(from_status(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline"))
