"""The mesh's decisions, as plain code: no I/O, no gRPC, no SQL.

A generation moves PENDING → COMPLETE | FAILED | CANCELLED and never again.
The stores execute what these functions decide; every text a user can read
about a failure is made here. Items that commit together (group commit) are
decided by the `decide_…s` folds: each item against the state as the items
before it left it, so a batch decides as its items would one by one.
"""

from __future__ import annotations

import enum
import random
import uuid
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from leo_mesh.backoff import backoff_delay

# A generation's key in a batch's state (its id, for the stores).
Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


class Status(enum.Enum):
    PENDING = "PENDING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


FINAL = frozenset({Status.COMPLETE, Status.FAILED, Status.CANCELLED})


class Model(enum.Enum):
    SD = "SD"
    SDXL = "SDXL"


class Kind(enum.Enum):
    """What a generation makes: still images, or one short animation."""

    IMAGE = "IMAGE"
    VIDEO = "VIDEO"


def can_move(current: Status, target: Status) -> bool:
    """The whole state machine: only a PENDING generation moves, and only to a final state."""
    return current is Status.PENDING and target in FINAL


# --- results reported by the AI ---


@dataclass(frozen=True)
class Asset:
    """A produced file: where the AI stored it (its key in the media store)
    and what it is. Generations completed before the media store hold an
    external `url` instead of a key."""

    key: str
    content_type: str
    width: int
    height: int
    byte_size: int = 0
    duration_ms: int = 0
    frame_count: int = 0
    url: str = ""


@dataclass(frozen=True)
class Result:
    """What the AI reported: stored files, or a failure reason."""

    assets: tuple[Asset, ...] | None = None
    failure_reason: str | None = None

    @property
    def status(self) -> Status:
        return Status.COMPLETE if self.assets is not None else Status.FAILED


class Completion(enum.Enum):
    APPLIED = "applied"  # the generation moved to its final state
    DUPLICATE = "duplicate"  # it already had exactly this result
    CONFLICT = "conflict"  # it already had another final state
    IGNORED = "ignored"  # it was cancelled: the result is dropped
    BAD_TOKEN = "bad_token"  # unknown generation, or not the latest dispatch's token


def decide_completion(*, status: Status | None, token_matches: bool, stored: Result, reported: Result) -> Completion:
    """What a callback's result does to a generation (status None: no such generation).

    The token is checked before anything else, so an unknown generation and
    a wrong token look the same to the caller.
    """
    if status is None or not token_matches:
        return Completion.BAD_TOKEN
    if status is Status.CANCELLED:
        return Completion.IGNORED
    if status in FINAL:
        return Completion.DUPLICATE if stored == reported else Completion.CONFLICT
    return Completion.APPLIED


@dataclass(frozen=True)
class Reported(Generic[Key, Value]):
    """One item of what the AI reported: about which generation, whether it
    carries the latest dispatch's token, and what it says (a Result or a Progress)."""

    generation: Key
    token_matches: bool
    value: Value


def decide_completions(
    reports: Sequence[Reported[Key, Result]], current: Mapping[Key, tuple[Status, Result]]
) -> list[Completion]:
    """What each result of a batch does, decided in order against the
    generations as the results before it left them (`current`: each existing
    generation's status and stored result). So a batch decides as its results
    would one by one: a generation takes at most one result, and a second
    result for it in the same batch is a duplicate or a conflict."""
    state = dict(current)
    decisions = []
    for report in reports:
        status, stored = state.get(report.generation, (None, Result()))
        decision = decide_completion(
            status=status, token_matches=report.token_matches, stored=stored, reported=report.value
        )
        if decision is Completion.APPLIED:
            state[report.generation] = (report.value.status, report.value)
        decisions.append(decision)
    return decisions


# --- progress reported by the AI while a generation is PENDING ---


@dataclass(frozen=True)
class Progress:
    """How far a running job is: its percent done, or nothing reported yet
    (None). Where a waiting generation stands is the queue's to say
    (leo_mesh.scheduling), not the worker's."""

    percent: int | None = None

    def is_ahead_of(self, other: Progress) -> bool:
        return (self.percent if self.percent is not None else -1) > (other.percent if other.percent is not None else -1)


NO_PROGRESS = Progress()
DONE = Progress(percent=100)


class ProgressOutcome(enum.Enum):
    APPLIED = "applied"  # the generation shows the reported progress
    IGNORED = "ignored"  # final already, or not ahead of what it shows: nothing changes
    BAD_TOKEN = "bad_token"  # unknown generation, or not the latest dispatch's token


def decide_progress(
    *, status: Status | None, token_matches: bool, stored: Progress, reported: Progress
) -> ProgressOutcome:
    """What a progress report does to a generation (status None: no such
    generation). Only the latest dispatch reports (a re-dispatch starts its
    progress afresh, see claim_due); progress never goes back, so reports
    that arrive out of order change nothing; a final generation keeps what it has."""
    if status is None or not token_matches:
        return ProgressOutcome.BAD_TOKEN
    if status in FINAL or not reported.is_ahead_of(stored):
        return ProgressOutcome.IGNORED
    return ProgressOutcome.APPLIED


def decide_progress_reports(
    reports: Sequence[Reported[Key, Progress]], current: Mapping[Key, tuple[Status, Progress]]
) -> list[ProgressOutcome]:
    """What each progress report of a batch does, decided in order against
    the generations as the reports before it left them (`current`: each
    existing generation's status and the progress it shows). A generation
    ends the batch showing its last applied report, the furthest one."""
    state = dict(current)
    decisions = []
    for report in reports:
        status, shown = state.get(report.generation, (None, NO_PROGRESS))
        decision = decide_progress(
            status=status, token_matches=report.token_matches, stored=shown, reported=report.value
        )
        if decision is ProgressOutcome.APPLIED:
            state[report.generation] = (Status.PENDING, report.value)
        decisions.append(decision)
    return decisions


def shown_progress(status: Status, stored: Progress) -> Progress:
    """What a client sees: the reported progress while PENDING, 100% once
    COMPLETE, nothing once FAILED or CANCELLED."""
    if status is Status.PENDING:
        return stored
    return DONE if status is Status.COMPLETE else NO_PROGRESS


# --- dispatch to the AI ---

# gRPC codes (by name) after which the same call may succeed later. CANCELLED
# is among them: the calls we retry are idempotent, and a call cancelled on
# the way (a reset stream) may not have been handled at all.
RETRYABLE_CODES = frozenset(
    {"CANCELLED", "UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL", "UNKNOWN"}
)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_s: float
    cap_s: float

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        return backoff_delay(attempt, base_s=self.base_s, cap_s=self.cap_s, rng=rng)


@dataclass(frozen=True)
class RetryLater:
    delay_s: float
    error: str


@dataclass(frozen=True)
class GiveUp:
    reason: str
    error: str | None = None


def rejected_reason(error: str) -> str:
    return f"the AI backend rejected the generation ({error})"


def unreachable_reason(attempts: int, error: str) -> str:
    return f"the AI backend could not be reached after {attempts} attempts (last error {error})"


def timed_out_reason(attempts: int) -> str:
    return f"timed out: the AI backend sent no result after {attempts} attempts"


def after_dispatch_error(
    attempt: int, code: str, details: str, policy: RetryPolicy, rng: random.Random | None = None
) -> RetryLater | GiveUp:
    """What follows a failed StartGeneration (`code` is the gRPC code's name)."""
    error = f"{code}: {details}"
    if code not in RETRYABLE_CODES:
        return GiveUp(rejected_reason(error), error)
    if attempt >= policy.max_attempts:
        return GiveUp(unreachable_reason(attempt, error), error)
    return RetryLater(policy.delay_s(attempt, rng), error)


def when_due(attempts: int, max_attempts: int) -> GiveUp | None:
    """A PENDING generation is due again (a retry, or its callback deadline
    passed): None to dispatch it once more, or why it ends FAILED."""
    if attempts >= max_attempts:
        return GiveUp(timed_out_reason(attempts))
    return None


# --- webhooks ---


class Delivery(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # try again after a delay
    FAILED = "failed"  # no more attempts


@dataclass(frozen=True)
class DeliveryDecision:
    outcome: Delivery
    delay_s: float | None = None


def after_webhook_attempt(
    status_code: int | None, attempt: int, policy: RetryPolicy, rng: random.Random | None = None
) -> DeliveryDecision:
    """2xx delivers; 410 Gone stops at once; anything else retries until the attempts run out."""
    if status_code is not None and 200 <= status_code < 300:
        return DeliveryDecision(Delivery.DELIVERED)
    if status_code == 410 or attempt >= policy.max_attempts:
        return DeliveryDecision(Delivery.FAILED)
    return DeliveryDecision(Delivery.RETRY, policy.delay_s(attempt, rng))


def unrecorded_attempt_error(attempts: int) -> str:
    return f"no result recorded for the last attempt ({attempts})"


NO_SECRET_ERROR = "the owner has no webhook secret: rotate one (RotateWebhookSecret) before using webhooks"


def when_webhook_due(attempts: int, max_attempts: int, *, has_secret: bool) -> GiveUp | None:
    """A PENDING delivery is due (a retry, or its claim's lease ran out): None
    to attempt it once more, or why it ends FAILED. A delivery whose last
    attempt was claimed but never recorded has no attempt left; one whose
    owner has no secret cannot be signed."""
    if attempts >= max_attempts:
        return GiveUp(unrecorded_attempt_error(attempts))
    if not has_secret:
        return GiveUp(NO_SECRET_ERROR)
    return None


# --- creates: idempotency and the PENDING cap ---


def pending_room(pending: int, cap: int) -> int:
    """How many more generations an owner with `pending` PENDING ones may create."""
    return max(0, cap - pending)


@dataclass(frozen=True)
class CreateAsk:
    """A create as the rules see it: whose, its request id (None: not given),
    a digest of what it asked for, and the owner's cap of PENDING generations."""

    owner: str
    request_id: uuid.UUID | None
    fingerprint: str
    cap: int

    @property
    def key(self) -> tuple[str, uuid.UUID] | None:
        """What makes a repeat: the same request id of the same owner."""
        return (self.owner, self.request_id) if self.request_id is not None else None


class Create(enum.Enum):
    INSERT = "insert"  # a new PENDING generation
    REPEAT = "repeat"  # the same request again: answered with the generation it made
    REUSED = "reused"  # its request id was used with other parameters: refused
    OVER_CAP = "over_cap"  # the owner has its cap of PENDING generations: refused


def decide_create(ask: CreateAsk, *, earlier_fingerprint: str | None, pending: int) -> Create:
    """What one create does, given the fingerprint of the generation made
    earlier with its request id (None: none was) and the owner's PENDING
    count. A repeat is answered even at the cap: it makes nothing."""
    if ask.key is not None and earlier_fingerprint is not None:
        return Create.REPEAT if earlier_fingerprint == ask.fingerprint else Create.REUSED
    if pending_room(pending, ask.cap) < 1:
        return Create.OVER_CAP
    return Create.INSERT


def decide_creates(
    asks: Sequence[CreateAsk],
    earlier: Mapping[tuple[str, uuid.UUID], str],
    pending: Mapping[str, int],
) -> list[Create]:
    """What each create of a batch does, decided in order against the state
    as the creates before it left it: `earlier` holds the fingerprints of
    the generations already made with a request id, `pending` each owner's
    PENDING count. So a batch decides as its creates would one by one: a
    request id repeated within it makes one generation, and no owner passes
    its cap whatever the order."""
    fingerprints = dict(earlier)
    counts = dict(pending)
    decisions = []
    for ask in asks:
        key = ask.key
        decision = decide_create(
            ask,
            earlier_fingerprint=fingerprints.get(key) if key is not None else None,
            pending=counts.get(ask.owner, 0),
        )
        if decision is Create.INSERT:
            counts[ask.owner] = counts.get(ask.owner, 0) + 1
            if key is not None:
                fingerprints[key] = ask.fingerprint
        decisions.append(decision)
    return decisions
