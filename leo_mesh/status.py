"""The one table from domain errors to gRPC statuses.

Every error a client can get carries a `google.rpc.ErrorInfo` (AIP-193) with
a machine-readable reason of DOMAIN; field errors also carry
`google.rpc.BadRequest`, and errors that retrying fixes `google.rpc.RetryInfo`.
docs/errors.md lists the reasons (a test compares it with this table).
"""

from __future__ import annotations

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from leo_mesh import errors

DOMAIN = "generation.leo.example"

Code = grpc.StatusCode

ERROR_TABLE: dict[type[errors.DomainError], tuple[grpc.StatusCode, str]] = {
    errors.InvalidArgument: (Code.INVALID_ARGUMENT, "FIELD_VIOLATION"),
    errors.MalformedRequest: (Code.INVALID_ARGUMENT, "MALFORMED_MESSAGE"),
    errors.ApiKeyInvalid: (Code.UNAUTHENTICATED, "API_KEY_INVALID"),
    errors.ApiKeyRevoked: (Code.UNAUTHENTICATED, "API_KEY_REVOKED"),
    errors.GenerationNotFound: (Code.NOT_FOUND, "GENERATION_NOT_FOUND"),
    errors.AssetNotFound: (Code.NOT_FOUND, "ASSET_NOT_FOUND"),
    errors.AssetLinkInvalid: (Code.PERMISSION_DENIED, "ASSET_LINK_INVALID"),
    errors.AssetLinkExpired: (Code.PERMISSION_DENIED, "ASSET_LINK_EXPIRED"),
    errors.RequestIdReused: (Code.ALREADY_EXISTS, "REQUEST_ID_REUSED"),
    errors.PendingLimitReached: (Code.RESOURCE_EXHAUSTED, "PENDING_LIMIT_REACHED"),
    errors.GenerationAlreadyFinal: (Code.FAILED_PRECONDITION, "GENERATION_ALREADY_FINAL"),
    errors.WebhookSecretRequired: (Code.FAILED_PRECONDITION, "WEBHOOK_SECRET_REQUIRED"),
    errors.CallbackTokenInvalid: (Code.UNAUTHENTICATED, "CALLBACK_TOKEN_INVALID"),
    errors.ResultConflict: (Code.FAILED_PRECONDITION, "RESULT_CONFLICT"),
    errors.DatabaseUnavailable: (Code.UNAVAILABLE, "DATABASE_UNAVAILABLE"),
    errors.ServerBusy: (Code.UNAVAILABLE, "SERVER_BUSY"),
    errors.ShuttingDown: (Code.UNAVAILABLE, "SHUTTING_DOWN"),
    errors.WatcherTooSlow: (Code.DEADLINE_EXCEEDED, "WATCHER_TOO_SLOW"),
    errors.BackendOverloaded: (Code.UNAVAILABLE, "BACKEND_OVERLOADED"),
    errors.WorkerFull: (Code.RESOURCE_EXHAUSTED, "WORKER_FULL"),
    errors.WorkerDraining: (Code.UNAVAILABLE, "WORKER_DRAINING"),
    errors.JobNotHeld: (Code.NOT_FOUND, "JOB_NOT_HELD"),
    errors.WrongWorker: (Code.FAILED_PRECONDITION, "WRONG_WORKER"),
}

# What a client gets for an error nobody expected (the details are logged).
INTERNAL = (Code.INTERNAL, "INTERNAL")
INTERNAL_MESSAGE = "internal error"


def code_and_reason(exc: errors.DomainError) -> tuple[grpc.StatusCode, str]:
    """The most specific table entry for the exception's class."""
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return INTERNAL


def _status(code: grpc.StatusCode, reason: str, message: str, extra: list) -> status_pb2.Status:
    """The details: what is specific to the error (BadRequest, RetryInfo) first, the ErrorInfo last."""
    status = status_pb2.Status(code=code.value[0], message=message)
    for detail in [*extra, error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN)]:
        status.details.add().Pack(detail)
    return status


def status_proto(exc: errors.DomainError) -> status_pb2.Status:
    code, reason = code_and_reason(exc)
    extra: list = []
    if isinstance(exc, errors.InvalidArgument):
        extra.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in exc.violations
                ]
            )
        )
    if exc.retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(round(exc.retry_after_s * 1000))
        extra.append(error_details_pb2.RetryInfo(retry_delay=delay))
    return _status(code, reason, exc.message, extra)


_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def code_name(number: int) -> str:
    """The name of a status code's number (a google.rpc.Status's `code`); UNKNOWN if gRPC has none."""
    return _CODE_NAMES.get(number, Code.UNKNOWN.name)


def reason_of(status: status_pb2.Status) -> str | None:
    """The google.rpc.ErrorInfo reason a status carries, if any."""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return None


def to_status(exc: errors.DomainError) -> grpc.Status:
    return rpc_status.to_status(status_proto(exc))


def internal_status_proto() -> status_pb2.Status:
    code, reason = INTERNAL
    return _status(code, reason, INTERNAL_MESSAGE, [])


def internal_status() -> grpc.Status:
    return rpc_status.to_status(internal_status_proto())
