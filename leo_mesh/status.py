"""Rich gRPC errors (google.rpc.Status with details) and their classification."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class RpcError(Exception):
    """An error a servicer raises; the server turns it into a gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str, *details) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def to_status(self) -> grpc.Status:
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        for detail in self.details:
            status.details.add().Pack(detail)
        return rpc_status.to_status(status)


def invalid_argument(violations: list[FieldViolation]) -> RpcError:
    """INVALID_ARGUMENT naming every bad field, with google.rpc.BadRequest details."""
    message = "; ".join(f"{v.field}: {v.description}" for v in violations)
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in violations
        ]
    )
    return RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid request: {message}", bad_request)


def not_found(what: str) -> RpcError:
    return RpcError(grpc.StatusCode.NOT_FOUND, f"{what} not found")


# Codes after which the same call may succeed later. CANCELLED is among
# them: the calls we retry are idempotent, and a call cancelled on the way
# (a reset stream) may not have been handled at all.
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)


def is_retryable(code: grpc.StatusCode) -> bool:
    return code in RETRYABLE_CODES

