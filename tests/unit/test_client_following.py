"""Following a generation: poll backoff, the wait's deadline, and what a final state means (pure logic)."""

from __future__ import annotations

import random

import grpc
import pytest

from leo.generation.v1 import generation_pb2
from leo_client import Generation, GenerationCancelled, GenerationFailed, WaitTimeout
from leo_client.errors import from_status
from leo_client.following import Backoff, Follower, final_result


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


def test_polls_never_sleep_past_the_deadline():
    clock = Clock()
    follower = Follower(0.1, clock=clock)
    assert follower.next_poll_delay() <= 0.1
    assert follower.call_timeout(30) == pytest.approx(0.1)


def test_without_a_timeout_the_wait_has_no_deadline():
    follower = Follower(None)
    assert follower.remaining() is None
    assert follower.call_timeout(30) == 30


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL]
)
def test_transient_errors_hand_over_to_polling(code):
    Follower(None).call_failed(from_status(code, "stream reset"))


@pytest.mark.parametrize("code", [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED])
def test_other_errors_end_the_wait(code):
    error = from_status(code, "no")
    with pytest.raises(type(error)):
        Follower(None).call_failed(error)


def test_an_error_after_the_deadline_is_a_timeout():
    clock = Clock()
    follower = Follower(5, clock=clock)
    clock.now += 5
    with pytest.raises(WaitTimeout):
        follower.call_failed(from_status(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline"))
