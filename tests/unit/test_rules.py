"""The mesh's decisions (leo_mesh.rules), exhaustively and as properties;
a batch's decisions (group commit) as those of its items one by one."""

from __future__ import annotations

import itertools
import random
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leo_mesh import rules
from leo_mesh.rules import (
    FINAL,
    Asset,
    Completion,
    Create,
    Delivery,
    Progress,
    ProgressOutcome,
    Result,
    RetryPolicy,
    Status,
)

IMAGES = Result(assets=(Asset("g/1.png", "image/png", 64, 64, byte_size=10),))
OTHER_IMAGES = Result(assets=(Asset("g/2.png", "image/png", 64, 64, byte_size=10),))
FAILURE = Result(failure_reason="content policy")
POLICY = RetryPolicy(max_attempts=3, base_s=1.0, cap_s=4.0)


@pytest.mark.parametrize("current", list(Status))
@pytest.mark.parametrize("target", list(Status))
def test_only_pending_moves_and_only_to_a_final_state(current, target):
    assert rules.can_move(current, target) is (current is Status.PENDING and target in FINAL)


# --- completion ---


@pytest.mark.parametrize("reported", [IMAGES, FAILURE])
def test_a_bad_token_or_an_unknown_generation_is_refused_before_anything_else(reported):
    for status in [None, *Status]:
        outcome = rules.decide_completion(status=status, token_matches=False, stored=IMAGES, reported=reported)
        assert outcome is Completion.BAD_TOKEN
    unknown = rules.decide_completion(status=None, token_matches=True, stored=Result(), reported=reported)
    assert unknown is Completion.BAD_TOKEN


@pytest.mark.parametrize(
    "status, stored, reported, outcome",
    [
        (Status.PENDING, Result(), IMAGES, Completion.APPLIED),
        (Status.PENDING, Result(), FAILURE, Completion.APPLIED),
        (Status.COMPLETE, IMAGES, IMAGES, Completion.DUPLICATE),
        (Status.COMPLETE, IMAGES, OTHER_IMAGES, Completion.CONFLICT),
        (Status.COMPLETE, IMAGES, FAILURE, Completion.CONFLICT),
        (Status.FAILED, FAILURE, FAILURE, Completion.DUPLICATE),
        (Status.FAILED, FAILURE, Result(failure_reason="other"), Completion.CONFLICT),
        (Status.FAILED, Result(failure_reason="timed out"), IMAGES, Completion.CONFLICT),
        (Status.CANCELLED, Result(), IMAGES, Completion.IGNORED),
        (Status.CANCELLED, Result(), FAILURE, Completion.IGNORED),
    ],
)
def test_what_a_result_does(status, stored, reported, outcome):
    assert rules.decide_completion(status=status, token_matches=True, stored=stored, reported=reported) is outcome


# --- no sequence of events moves a final generation ---

results = st.sampled_from([IMAGES, OTHER_IMAGES, FAILURE, Result(failure_reason="other")])
events = st.one_of(
    st.tuples(st.just("callback"), results, st.booleans()),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("due")),
    st.tuples(st.just("dispatch_error"), st.sampled_from(["UNAVAILABLE", "INVALID_ARGUMENT", "INTERNAL"])),
)


class Generation:
    """A generation driven only by the rules, as the stores drive rows."""

    def __init__(self) -> None:
        self.status, self.result, self.attempts = Status.PENDING, Result(), 1

    def finish(self, status: Status, result: Result) -> None:
        assert rules.can_move(self.status, status)
        self.status, self.result = status, result

    def apply(self, event: tuple) -> None:
        kind = event[0]
        if kind == "callback":
            outcome = rules.decide_completion(
                status=self.status, token_matches=event[2], stored=self.result, reported=event[1]
            )
            if outcome is Completion.APPLIED:
                self.finish(event[1].status, event[1])
        elif kind == "cancel" and rules.can_move(self.status, Status.CANCELLED):
            self.finish(Status.CANCELLED, Result())
        elif kind == "due" and self.status is Status.PENDING:
            verdict = rules.when_due(self.attempts, POLICY.max_attempts)
            if verdict is None:
                self.attempts += 1
            else:
                self.finish(Status.FAILED, Result(failure_reason=verdict.reason))
        elif kind == "dispatch_error" and self.status is Status.PENDING:
            verdict = rules.after_dispatch_error(self.attempts, event[1], "x", POLICY, random.Random(0))
            if isinstance(verdict, rules.GiveUp):
                self.finish(Status.FAILED, Result(failure_reason=verdict.reason))


@given(st.lists(events, max_size=30))
def test_no_sequence_of_events_moves_a_final_generation(sequence):
    generation = Generation()
    final = None
    for event in sequence:
        generation.apply(event)
        if final is not None:
            assert (generation.status, generation.result) == final
        elif generation.status in FINAL:
            final = (generation.status, generation.result)
    assert generation.attempts <= POLICY.max_attempts


# --- progress ---

RUNNING_0, RUNNING_40 = Progress(percent=0), Progress(percent=40)
STAGES = [rules.NO_PROGRESS, RUNNING_0, RUNNING_40, rules.DONE]


def test_a_progress_report_with_a_bad_token_or_for_an_unknown_generation_is_refused():
    for status in [None, *Status]:
        for stored in STAGES:
            outcome = rules.decide_progress(status=status, token_matches=False, stored=stored, reported=RUNNING_40)
            assert outcome is ProgressOutcome.BAD_TOKEN
    assert (
        rules.decide_progress(status=None, token_matches=True, stored=rules.NO_PROGRESS, reported=RUNNING_40)
        is ProgressOutcome.BAD_TOKEN
    )


@pytest.mark.parametrize("status", sorted(FINAL, key=lambda s: s.value))
def test_a_final_generation_keeps_its_progress(status):
    for stored in STAGES:
        for reported in STAGES:
            outcome = rules.decide_progress(status=status, token_matches=True, stored=stored, reported=reported)
            assert outcome is ProgressOutcome.IGNORED


def test_progress_only_moves_forward():
    """Nothing, then further along: each stage is ahead of those before it,
    so a report that arrives late changes nothing."""
    for i, stored in enumerate(STAGES):
        for j, reported in enumerate(STAGES):
            outcome = rules.decide_progress(status=Status.PENDING, token_matches=True, stored=stored, reported=reported)
            assert outcome is (ProgressOutcome.APPLIED if j > i else ProgressOutcome.IGNORED), (stored, reported)


@given(st.lists(st.builds(Progress, percent=st.integers(0, 100))))
def test_what_a_watcher_sees_never_goes_back(reports):
    shown, seen = rules.NO_PROGRESS, []
    for reported in reports:
        if rules.decide_progress(status=Status.PENDING, token_matches=True, stored=shown, reported=reported) is (
            ProgressOutcome.APPLIED
        ):
            shown = reported
            seen.append(shown)
    percents = [p.percent for p in seen]
    assert percents == sorted(percents) and len(set(percents)) == len(percents)


def test_what_a_client_sees_of_progress():
    assert rules.shown_progress(Status.PENDING, RUNNING_40) == RUNNING_40
    assert rules.shown_progress(Status.COMPLETE, RUNNING_40) == rules.DONE
    assert rules.shown_progress(Status.FAILED, RUNNING_40) == rules.NO_PROGRESS
    assert rules.shown_progress(Status.CANCELLED, RUNNING_0) == rules.NO_PROGRESS


# --- dispatch errors ---


def test_a_retryable_error_is_retried_with_backoff_until_the_last_attempt():
    rng = random.Random(1)
    for attempt in (1, 2):
        verdict = rules.after_dispatch_error(attempt, "UNAVAILABLE", "down", POLICY, rng)
        assert isinstance(verdict, rules.RetryLater)
        assert verdict.error == "UNAVAILABLE: down"
        assert 0 <= verdict.delay_s <= min(POLICY.cap_s, POLICY.base_s * 2 ** (attempt - 1))
    last = rules.after_dispatch_error(3, "UNAVAILABLE", "down", POLICY, rng)
    assert last == rules.GiveUp(
        "the AI backend could not be reached after 3 attempts (last error UNAVAILABLE: down)", "UNAVAILABLE: down"
    )


@pytest.mark.parametrize("code", ["INVALID_ARGUMENT", "PERMISSION_DENIED", "FAILED_PRECONDITION", "UNIMPLEMENTED"])
def test_a_refusal_ends_the_generation_at_once(code):
    verdict = rules.after_dispatch_error(1, code, "no", POLICY)
    assert verdict == rules.GiveUp(f"the AI backend rejected the generation ({code}: no)", f"{code}: no")


def test_due_again_dispatches_until_the_attempts_run_out():
    assert rules.when_due(2, 3) is None
    assert rules.when_due(3, 3) == rules.GiveUp("timed out: the AI backend sent no result after 3 attempts")


# --- webhooks ---


@pytest.mark.parametrize("status_code", [200, 201, 204, 299])
def test_2xx_delivers(status_code):
    assert rules.after_webhook_attempt(status_code, 1, POLICY).outcome is Delivery.DELIVERED


def test_410_stops_and_other_failures_retry_until_the_last_attempt():
    assert rules.after_webhook_attempt(410, 1, POLICY) == rules.DeliveryDecision(Delivery.FAILED)
    for status_code in (None, 300, 404, 500, 503):
        retry = rules.after_webhook_attempt(status_code, 1, POLICY, random.Random(2))
        assert retry.outcome is Delivery.RETRY and 0 <= retry.delay_s <= POLICY.base_s
        assert rules.after_webhook_attempt(status_code, 3, POLICY).outcome is Delivery.FAILED


@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=10_000))
def test_pending_room(pending, cap):
    room = rules.pending_room(pending, cap)
    assert room >= 0 and (room == 0) is (pending >= cap)
    if pending < cap:
        assert pending + room == cap  # filling the room reaches the cap, never passes it


@pytest.mark.parametrize("max_attempts", [1, 3])
@pytest.mark.parametrize("attempts", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("has_secret", [True, False])
def test_a_due_webhook_is_attempted_while_attempts_remain_and_it_can_be_signed(attempts, max_attempts, has_secret):
    verdict = rules.when_webhook_due(attempts, max_attempts, has_secret=has_secret)
    if attempts >= max_attempts:  # the last attempt was claimed and never recorded: first of the two reasons
        assert verdict == rules.GiveUp(rules.unrecorded_attempt_error(attempts))
    elif not has_secret:
        assert verdict == rules.GiveUp(rules.NO_SECRET_ERROR)
    else:
        assert verdict is None


# --- batches: each item decided against the state as the items before it left it ---


def in_chunks(decide, after, items: list, state, cuts: list[int]) -> list:
    """The decisions of `items` cut into consecutive batches at `cuts`, each
    batch decided against the state the batches before it left (`after`
    applies a batch's decisions to the state, as the store writes them)."""
    decisions: list = []
    bounds = sorted({0, len(items), *(cut % (len(items) + 1) for cut in cuts)})
    for start, end in itertools.pairwise(bounds):
        batch = items[start:end]
        decided = decide(batch, state)
        state = after(state, batch, decided)
        decisions.extend(decided)
    return decisions


OWNERS = ["alice", "bob"]
REQUEST_IDS = [uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)]
asks = st.builds(
    rules.CreateAsk,
    owner=st.sampled_from(OWNERS),
    request_id=st.one_of(st.none(), st.sampled_from(REQUEST_IDS)),
    fingerprint=st.sampled_from(["f1", "f2"]),
    cap=st.integers(0, 4),
)
create_states = st.tuples(
    st.dictionaries(st.tuples(st.sampled_from(OWNERS), st.sampled_from(REQUEST_IDS)), st.sampled_from(["f1", "f2"])),
    st.fixed_dictionaries({owner: st.integers(0, 4) for owner in OWNERS}),
)


def decide_creates(batch, state):
    earlier, pending = state
    return rules.decide_creates(batch, earlier, pending)


def after_creates(state, batch, decisions):
    """What the store's INSERTs leave: the request ids taken, the PENDING counts (kept by the triggers)."""
    earlier, pending = dict(state[0]), dict(state[1])
    for ask, decision in zip(batch, decisions, strict=True):
        if decision is Create.INSERT:
            pending[ask.owner] += 1
            if ask.key is not None:
                earlier[ask.key] = ask.fingerprint
    return earlier, pending


@given(st.lists(asks, max_size=12), create_states, st.lists(st.integers(0, 12), max_size=4))
def test_a_batch_of_creates_decides_as_its_creates_would_one_by_one(batch, state, cuts):
    whole = decide_creates(batch, state)
    assert in_chunks(decide_creates, after_creates, batch, state, cuts) == whole
    one_by_one = in_chunks(decide_creates, after_creates, batch, state, list(range(len(batch))))
    assert one_by_one == whole


@given(st.lists(asks, max_size=12), create_states)
def test_creates_never_pass_an_owner_s_cap_and_are_refused_only_at_it(batch, state):
    earlier, pending = state
    counts = dict(pending)
    for ask, decision in zip(batch, decide_creates(batch, state), strict=True):
        if decision is Create.INSERT:
            assert counts[ask.owner] < ask.cap
            counts[ask.owner] += 1
        elif decision is Create.OVER_CAP:
            assert counts[ask.owner] >= ask.cap
            assert ask.key not in earlier  # a repeat is answered even at the cap


@given(
    st.lists(st.sampled_from(OWNERS), max_size=12),
    st.fixed_dictionaries({owner: st.integers(0, 4) for owner in OWNERS}),
    st.integers(0, 4),
    st.randoms(use_true_random=False),
)
def test_whatever_the_order_an_owner_s_creates_fill_its_room_exactly(owners, pending, cap, rng):
    batch = [rules.CreateAsk(owner, None, "f", cap) for owner in owners]
    shuffled = rng.sample(batch, len(batch))
    for order in (batch, shuffled):
        decisions = rules.decide_creates(order, {}, pending)
        for owner in OWNERS:
            inserted = sum(
                1
                for ask, decision in zip(order, decisions, strict=True)
                if ask.owner == owner and decision is Create.INSERT
            )
            assert inserted == min(rules.pending_room(pending[owner], cap), owners.count(owner))


@given(st.lists(asks, max_size=12), create_states)
def test_a_request_id_makes_at_most_one_generation_and_its_repeats_are_answered_with_it(batch, state):
    earlier, _ = state
    decisions = decide_creates(batch, state)
    for key in {ask.key for ask in batch if ask.key is not None}:
        mine = [(ask, decision) for ask, decision in zip(batch, decisions, strict=True) if ask.key == key]
        inserts = [ask for ask, decision in mine if decision is Create.INSERT]
        assert len(inserts) <= 1 and not (inserts and key in earlier)
        original = earlier.get(key) or (inserts[0].fingerprint if inserts else None)
        seen_original = key in earlier
        for ask, decision in mine:
            if decision is Create.INSERT:
                seen_original = True
            elif seen_original:  # after the original: the same request again, or a reuse of its id
                assert decision is (Create.REPEAT if ask.fingerprint == original else Create.REUSED)
            else:  # before any original only the cap refuses
                assert decision is Create.OVER_CAP
    for ask, decision in zip(batch, decisions, strict=True):
        if ask.request_id is None:
            assert decision in (Create.INSERT, Create.OVER_CAP)


GENERATIONS = [0, 1, 2]
completion_reports = st.builds(
    rules.Reported, generation=st.sampled_from(GENERATIONS), token_matches=st.booleans(), value=results
)
completion_states = st.dictionaries(
    st.sampled_from(GENERATIONS),
    st.one_of(
        st.just((Status.PENDING, Result())),
        st.just((Status.CANCELLED, Result())),
        results.map(lambda result: (result.status, result)),
    ),
)


def after_completions(state, batch, decisions):
    """What the store's UPDATE leaves: each applied result, final."""
    state = dict(state)
    for report, decision in zip(batch, decisions, strict=True):
        if decision is Completion.APPLIED:
            state[report.generation] = (report.value.status, report.value)
    return state


@given(st.lists(completion_reports, max_size=10), completion_states, st.lists(st.integers(0, 10), max_size=3))
def test_a_batch_of_results_decides_as_its_results_would_one_by_one(batch, state, cuts):
    whole = rules.decide_completions(batch, state)
    assert in_chunks(rules.decide_completions, after_completions, batch, state, cuts) == whole
    assert in_chunks(rules.decide_completions, after_completions, batch, state, list(range(len(batch)))) == whole


@given(st.lists(completion_reports, max_size=10), completion_states)
def test_in_a_batch_the_first_result_applies_and_later_ones_are_duplicates_or_conflicts(batch, state):
    decisions = rules.decide_completions(batch, state)
    applied: dict[int, Result] = {}
    for report, decision in zip(batch, decisions, strict=True):
        status = state[report.generation][0] if report.generation in state else None
        if not report.token_matches or status is None:
            assert decision is Completion.BAD_TOKEN
        elif report.generation in applied:
            first = applied[report.generation]
            assert decision is (Completion.DUPLICATE if report.value == first else Completion.CONFLICT)
        elif decision is Completion.APPLIED:
            assert status is Status.PENDING
            applied[report.generation] = report.value
        else:
            assert status is not Status.PENDING


progress_values = st.builds(Progress, percent=st.none() | st.integers(0, 100))
progress_reports = st.builds(
    rules.Reported, generation=st.sampled_from(GENERATIONS), token_matches=st.booleans(), value=progress_values
)
progress_states = st.dictionaries(
    st.sampled_from(GENERATIONS), st.tuples(st.sampled_from(list(Status)), st.sampled_from(STAGES))
)


def after_progress(state, batch, decisions):
    """What the store's UPDATE leaves: each generation's last applied report."""
    state = dict(state)
    for report, decision in zip(batch, decisions, strict=True):
        if decision is ProgressOutcome.APPLIED:
            state[report.generation] = (state[report.generation][0], report.value)
    return state


@given(st.lists(progress_reports, max_size=10), progress_states, st.lists(st.integers(0, 10), max_size=3))
def test_a_batch_of_progress_reports_decides_as_its_reports_would_one_by_one(batch, state, cuts):
    whole = rules.decide_progress_reports(batch, state)
    assert in_chunks(rules.decide_progress_reports, after_progress, batch, state, cuts) == whole
    assert in_chunks(rules.decide_progress_reports, after_progress, batch, state, list(range(len(batch)))) == whole


@given(st.lists(progress_reports, max_size=10), progress_states)
def test_in_a_batch_progress_only_moves_forward_and_only_while_pending(batch, state):
    decisions = rules.decide_progress_reports(batch, state)
    shown = {generation: stored for generation, (_, stored) in state.items()}
    for report, decision in zip(batch, decisions, strict=True):
        known = report.generation in state
        assert (decision is ProgressOutcome.BAD_TOKEN) is (not report.token_matches or not known)
        if decision is ProgressOutcome.APPLIED:
            assert state[report.generation][0] is Status.PENDING
            assert report.value.is_ahead_of(shown[report.generation])
            shown[report.generation] = report.value
        elif decision is ProgressOutcome.IGNORED and state[report.generation][0] is Status.PENDING:
            assert not report.value.is_ahead_of(shown[report.generation])
    assert after_progress(state, batch, decisions) == {g: (state[g][0], shown[g]) for g in state}
