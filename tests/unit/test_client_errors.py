"""leo_client's errors: one class per status code, with the google.rpc details read generically.

The last tests run a real in-process gRPC server that answers with a rich
status, so the details travel in trailers as they do from the services, to
the blocking and the asyncio client.
"""

from __future__ import annotations

import uuid
from concurrent import futures

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

import leo_client
from leo.generation.v1 import generation_pb2
from leo_client import (
    AlreadyExists,
    ApiError,
    AsyncClient,
    CallCancelled,
    Client,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from leo_client.errors import AuthError, from_rpc_error, from_status

DOMAIN = "generation.leo.example"


def rich_status(code: int, message: str, *details) -> status_pb2.Status:
    status = status_pb2.Status(code=code, message=message)
    for detail in details:
        status.details.add().Pack(detail)
    return status


@pytest.mark.parametrize(
    "code, kind",
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.OUT_OF_RANGE, InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, AlreadyExists),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition),
        (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, RateLimited),
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
        (grpc.StatusCode.CANCELLED, CallCancelled),
        (grpc.StatusCode.UNIMPLEMENTED, Unimplemented),
        (grpc.StatusCode.INTERNAL, ServerError),
        (grpc.StatusCode.UNKNOWN, ServerError),
        (grpc.StatusCode.ABORTED, ApiError),
    ],
)
def test_each_status_code_has_its_class(code, kind):
    error = from_status(code, "message")
    assert type(error) is kind
    assert isinstance(error, leo_client.LeoError)
    assert error.code is code and error.message == "message" == str(error)


def test_both_auth_errors_share_a_base():
    assert issubclass(Unauthenticated, AuthError) and issubclass(PermissionDenied, AuthError)


def test_field_violations_come_from_bad_request():
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="width", description="must be a multiple of 8"),
            error_details_pb2.BadRequest.FieldViolation(field="prompt", description="is required"),
        ]
    )
    status = rich_status(code_pb2.INVALID_ARGUMENT, "invalid request", bad_request)
    error = from_status(grpc.StatusCode.INVALID_ARGUMENT, "invalid request", status)
    assert [(v.field, v.description) for v in error.violations] == [
        ("width", "must be a multiple of 8"),
        ("prompt", "is required"),
    ]
    assert str(error.violations[0]) == "width: must be a multiple of 8"


def test_error_info_is_read_for_any_code():
    info = error_details_pb2.ErrorInfo(reason="GENERATION_NOT_PENDING", domain=DOMAIN, metadata={"status": "COMPLETE"})
    status = rich_status(code_pb2.FAILED_PRECONDITION, "already complete", info)
    error = from_status(grpc.StatusCode.FAILED_PRECONDITION, "already complete", status)
    assert (error.reason, error.domain, error.metadata) == ("GENERATION_NOT_PENDING", DOMAIN, {"status": "COMPLETE"})
    assert error.to_status() == status


def test_without_details_nothing_is_made_up():
    error = from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many")
    assert error.reason is None and error.domain is None and error.metadata == {}
    assert error.retry_after is None
    assert error.to_status() == status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="too many")


def test_retry_after_comes_from_retry_info():
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2, nanos=500_000_000))
    status = rich_status(code_pb2.RESOURCE_EXHAUSTED, "slow down", retry)
    assert from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", status).retry_after == 2.5


class _FailedCall(grpc.RpcError, grpc.Call):
    """A failed call whose trailers carry a status that disagrees with the call's own."""

    def __init__(self, trailer: status_pb2.Status) -> None:
        self._trailer = trailer

    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return "upstream connect error"

    def trailing_metadata(self):
        return (("grpc-status-details-bin", self._trailer.SerializeToString()),)

    def initial_metadata(self):
        return ()

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False


def test_details_that_disagree_with_the_call_are_ignored():
    error = from_rpc_error(_FailedCall(rich_status(code_pb2.NOT_FOUND, "other")))
    assert type(error) is Unavailable and error.message == "upstream connect error" and error.status is None


# --- over a real gRPC connection ---

GET = "/leo.generation.v1.GenerationService/GetGeneration"
ERROR_INFO = error_details_pb2.ErrorInfo(reason="GENERATION_NOT_FOUND", domain=DOMAIN)
BAD_REQUEST = error_details_pb2.BadRequest(
    field_violations=[error_details_pb2.BadRequest.FieldViolation(field="generation_id", description="must be a UUID")]
)


@pytest.fixture(scope="module")
def rich_error_server():
    """Answers GetGeneration with NOT_FOUND + ErrorInfo, or INVALID_ARGUMENT + BadRequest + ErrorInfo
    for an id that is not a UUID, and records the metadata it was sent."""
    seen: list[dict[str, str]] = []

    def get(request: bytes, context: grpc.ServicerContext) -> bytes:
        seen.append(dict(context.invocation_metadata()))
        generation_id = generation_pb2.GetGenerationRequest.FromString(request).generation_id
        try:
            uuid.UUID(generation_id)
        except ValueError:
            status = rich_status(code_pb2.INVALID_ARGUMENT, "invalid request", BAD_REQUEST, ERROR_INFO)
        else:
            status = rich_status(code_pb2.NOT_FOUND, f"generation {generation_id} not found", ERROR_INFO)
        context.abort_with_status(rpc_status.to_status(status))

    handler = grpc.method_handlers_generic_handler(
        "leo.generation.v1.GenerationService", {"GetGeneration": grpc.unary_unary_rpc_method_handler(get)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", seen
    server.stop(None)


def test_the_blocking_client_reads_the_details_from_the_trailers(rich_error_server):
    target, seen = rich_error_server
    with Client(target, "leo_test_key") as client:
        with pytest.raises(NotFound) as caught:
            client.get(str(uuid.uuid4()))
        with pytest.raises(InvalidArgument) as invalid:
            client.get("not-a-uuid")
    assert caught.value.reason == "GENERATION_NOT_FOUND" and caught.value.domain == DOMAIN
    assert [v.field for v in invalid.value.violations] == ["generation_id"]
    assert invalid.value.reason == "GENERATION_NOT_FOUND"
    assert seen[-1]["authorization"] == "Bearer leo_test_key"


async def test_the_asyncio_client_reads_the_details_from_the_trailers(rich_error_server):
    target, _ = rich_error_server
    async with AsyncClient(target, "leo_test_key") as client:
        with pytest.raises(NotFound) as caught:
            await client.get(str(uuid.uuid4()))
        with pytest.raises(InvalidArgument) as invalid:
            await client.get("not-a-uuid")
    assert caught.value.reason == "GENERATION_NOT_FOUND"
    assert [v.field for v in invalid.value.violations] == ["generation_id"]
