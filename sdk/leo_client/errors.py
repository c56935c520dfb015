"""One exception hierarchy for everything the client raises.

Server errors become an `ApiError` subclass chosen by the gRPC status code;
the `google.rpc` details the server attaches (ErrorInfo, BadRequest,
RetryInfo) fill its attributes whenever they are present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

if TYPE_CHECKING:
    from leo_client.types import Generation


class LeoError(Exception):
    """Base of every error raised by leo_client."""


class ConfigurationError(LeoError, ValueError):
    """The client cannot be set up: a setting has a bad value, or a file cannot be read."""


class MissingApiKey(ConfigurationError):
    """No API key was given, neither as an argument nor in LEO_API_KEY."""


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field and the rule it broke."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


class ApiError(LeoError):
    """The server (or the connection to it) refused a call.

    Attributes:
        code: the gRPC status code.
        message: the server's message.
        reason: `google.rpc.ErrorInfo.reason` (UPPER_SNAKE_CASE) when the server sent one.
        domain: `google.rpc.ErrorInfo.domain` when the server sent one.
        metadata: `google.rpc.ErrorInfo.metadata`.
        retry_after: seconds to wait before retrying, from `google.rpc.RetryInfo`, when sent.
        status: the whole `google.rpc.Status` when the server sent one.
    """

    transient: ClassVar[bool] = False
    """True when the same call may succeed if made again later."""

    def __init__(self, code: grpc.StatusCode, message: str, status: status_pb2.Status | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        info = _detail(status, error_details_pb2.ErrorInfo)
        self.reason: str | None = info.reason or None if info else None
        self.domain: str | None = info.domain or None if info else None
        self.metadata: dict[str, str] = dict(info.metadata) if info else {}
        retry = _detail(status, error_details_pb2.RetryInfo)
        self.retry_after: float | None = (
            retry.retry_delay.ToTimedelta().total_seconds() if retry and retry.HasField("retry_delay") else None
        )

    def to_status(self) -> status_pb2.Status:
        """The error as a `google.rpc.Status` (what the HTTP API answers with)."""
        return self.status or status_pb2.Status(code=self.code.value[0], message=self.message)


class InvalidArgument(ApiError):
    """The request broke a rule; `violations` names each bad field."""

    def __init__(self, code: grpc.StatusCode, message: str, status: status_pb2.Status | None = None) -> None:
        super().__init__(code, message, status)
        bad_request = _detail(status, error_details_pb2.BadRequest)
        self.violations: list[FieldViolation] = [
            FieldViolation(v.field, v.description) for v in (bad_request.field_violations if bad_request else ())
        ]


class NotFound(ApiError):
    """No such generation for this key (another owner's looks the same)."""


class AlreadyExists(ApiError):
    """A request_id was used before with other parameters."""


class FailedPrecondition(ApiError):
    """The call does not fit the resource's state (e.g. cancelling a finished generation)."""


class AuthError(ApiError):
    """The key is missing, unknown, revoked or not allowed this call."""


class Unauthenticated(AuthError):
    """No valid API key."""


class PermissionDenied(AuthError):
    """The key may not make this call."""


class RateLimited(ApiError):
    """Too many requests, or too many PENDING generations (see `retry_after`)."""


class Unavailable(ApiError):
    """The service could not be reached or answered UNAVAILABLE, after the channel's retries."""

    transient = True


class ConnectionLost(Unavailable):
    """A wait lost its connection and could not get it back within its
    reconnect bound. The generation goes on; `generation` is its last state
    seen, `last_error` why the last try failed, `attempts` how many tries were made."""

    transient = False

    def __init__(self, generation: Generation, last_error: ApiError, *, attempts: int, lost_for_s: float) -> None:
        tries = "1 try" if attempts == 1 else f"{attempts} tries"
        super().__init__(
            grpc.StatusCode.UNAVAILABLE,
            f"lost the connection while following generation {generation.id}: no answer for {lost_for_s:.0f} s"
            f" ({tries}); last error: {last_error.code.name}: {last_error.message}",
        )
        self.generation = generation
        self.last_error = last_error
        self.attempts = attempts
        self.lost_for_s = lost_for_s


class DeadlineExceeded(ApiError):
    """The call did not finish within its deadline."""

    transient = True


class CallCancelled(ApiError):
    """The call was cancelled on its way (e.g. a reset stream)."""

    transient = True


class Unimplemented(ApiError):
    """The server does not know this call (an older server, or the wrong port)."""


class ServerError(ApiError):
    """An internal error of the server or of a proxy in front of it."""

    transient = True


class GenerationError(LeoError):
    """A generation ended without images; `generation` is its final state."""

    def __init__(self, generation: Generation, message: str) -> None:
        super().__init__(message)
        self.generation = generation


class GenerationFailed(GenerationError):
    """The generation ended FAILED; `reason` says why."""

    def __init__(self, generation: Generation) -> None:
        self.reason = generation.failure_reason or "no reason given"
        super().__init__(generation, f"generation {generation.id} failed: {self.reason}")


class GenerationCancelled(GenerationError):
    """The generation was cancelled before it finished."""

    def __init__(self, generation: Generation) -> None:
        super().__init__(generation, f"generation {generation.id} was cancelled")


class WaitTimeout(LeoError, TimeoutError):
    """Waiting gave up before the generation finished. The generation goes on;
    `generation` is its last known state (None if none was read)."""

    def __init__(self, generation: Generation | None, timeout: float) -> None:
        state = f"still {generation.status.name}" if generation else "not read"
        super().__init__(f"gave up waiting after {timeout:g} s: generation {state}")
        self.generation = generation
        self.timeout = timeout


_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimited,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: CallCancelled,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: ServerError,
    grpc.StatusCode.UNKNOWN: ServerError,
    grpc.StatusCode.DATA_LOSS: ServerError,
}


def from_status(code: grpc.StatusCode, message: str, status: status_pb2.Status | None = None) -> ApiError:
    """The exception for a status code, its message and its `google.rpc.Status`, if any."""
    return _BY_CODE.get(code, ApiError)(code, message, status)


def from_rpc_error(error: grpc.RpcError) -> ApiError:
    """The exception for a failed gRPC call (sync or asyncio)."""
    call: grpc.Call = error  # type: ignore[assignment]  # every RpcError a channel raises is also a Call
    try:
        status = rpc_status.from_call(call)
    except ValueError:  # status details that disagree with the call's own status: ignore them
        status = None
    return from_status(call.code(), call.details() or call.code().name, status)


_Detail = TypeVar("_Detail", error_details_pb2.ErrorInfo, error_details_pb2.BadRequest, error_details_pb2.RetryInfo)


def _detail(status: status_pb2.Status | None, kind: type[_Detail]) -> _Detail | None:
    """The first detail of type `kind` in a `google.rpc.Status`."""
    for detail in status.details if status else ():
        if detail.Is(kind.DESCRIPTOR):
            found = kind()
            detail.Unpack(found)
            return found
    return None
