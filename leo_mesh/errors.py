"""The errors a caller can get, as plain exceptions.

Validation, stores and rules raise these; they know nothing of gRPC.
`leo_mesh.status` maps each class to a gRPC code and a machine-readable
`google.rpc.ErrorInfo` reason, in one table applied by one interceptor.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class DomainError(Exception):
    """An error whose message a caller can read and act on."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Set when retrying later is the remedy: becomes google.rpc.RetryInfo.
        self.retry_after_s = retry_after_s


class InvalidArgument(DomainError):
    """One or more fields break a rule; each violation names its field."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("invalid request: " + "; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = list(violations)


def invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation(field, description)])


class MalformedRequest(DomainError):
    """The request bytes are not a valid message of the method's type."""


class ApiKeyInvalid(DomainError):
    def __init__(self) -> None:
        super().__init__("a valid API key is required: Authorization: Bearer <key>")


class ApiKeyRevoked(DomainError):
    def __init__(self) -> None:
        super().__init__("the API key of this call was revoked")


class GenerationNotFound(DomainError):
    def __init__(self, generation_id: object) -> None:
        super().__init__(f"generation {generation_id} not found")


class AssetNotFound(DomainError):
    def __init__(self, generation_id: object, index: int) -> None:
        super().__init__(f"generation {generation_id} has no stored file {index}")


class AssetLinkInvalid(DomainError):
    """A signed link whose signature does not match its path and expiry."""

    def __init__(self) -> None:
        super().__init__("this link's signature is not valid; read the generation again for a fresh link")


class AssetLinkExpired(DomainError):
    def __init__(self) -> None:
        super().__init__("this link has expired; read the generation again for a fresh link")


class RequestIdReused(DomainError):
    def __init__(self, request_id: object) -> None:
        super().__init__(f"request_id {request_id} was already used with other parameters; use a new request_id")


class PendingLimitReached(DomainError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"too many pending generations: at most {limit} may be PENDING at once; retry when some finish"
        )
        self.limit = limit


class GenerationAlreadyFinal(DomainError):
    def __init__(self, generation_id: object, status: str) -> None:
        super().__init__(f"generation {generation_id} is already {status}; only PENDING generations can be cancelled")


class WebhookSecretRequired(DomainError):
    def __init__(self) -> None:
        super().__init__("webhooks are signed: make a webhook secret first (POST /v1/webhookSecret:rotate)")


class CallbackTokenInvalid(DomainError):
    """Also the answer for an unknown generation: the callback port must not
    reveal which generation ids exist."""

    def __init__(self) -> None:
        super().__init__("the callback token is missing or not the latest dispatch's")


class ResultConflict(DomainError):
    def __init__(self, generation_id: object) -> None:
        super().__init__(f"generation {generation_id} already has another final result")


class DatabaseUnavailable(DomainError):
    def __init__(self) -> None:
        super().__init__("the database is unavailable; retry later", retry_after_s=1.0)


class ServerBusy(DomainError):
    """Too much work queued for this process: shed before anything times out."""

    def __init__(self) -> None:
        super().__init__("the server is busy; retry later", retry_after_s=1.0)


class ShuttingDown(DomainError):
    def __init__(self, what: str = "retry") -> None:
        super().__init__(f"the server is shutting down; {what}")


class WatcherTooSlow(DomainError):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"watcher dropped: a message was not written within {timeout_s:g} s")


class BackendOverloaded(DomainError):
    """The AI backend refuses work for now (the mock AI's injected failures)."""

    def __init__(self) -> None:
        super().__init__("the AI backend is overloaded (simulated)", retry_after_s=1.0)


class WorkerFull(DomainError):
    """An AI worker has no room for another job (its slots and prefetch are taken)."""

    def __init__(self) -> None:
        super().__init__("the AI worker has no free slot and no room to hold a job", retry_after_s=0.5)


class WorkerDraining(DomainError):
    """An AI worker takes no new job: it finishes what it runs, then leaves the pool."""

    def __init__(self) -> None:
        super().__init__("the AI worker is draining: it takes no new job")


class WrongWorker(DomainError):
    """A start meant for another worker (a new process at the address of one that is gone)."""

    def __init__(self, meant: str) -> None:
        super().__init__(f"this AI worker is not worker {meant}: it takes no job meant for another")


class JobNotHeld(DomainError):
    def __init__(self, generation_id: object) -> None:
        super().__init__(f"the AI worker holds no job for generation {generation_id}")
