"""The error table: every domain error has a code and a reason, every status
carries its ErrorInfo, and docs/errors.md lists exactly the table's reasons."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from leo_mesh import errors
from leo_mesh.status import DOMAIN, ERROR_TABLE, INTERNAL, code_and_reason, internal_status, status_proto, to_status

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text()


def all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *all_subclasses(sub)}
    return found


def unpacked(status: status_pb2.Status) -> list:
    kinds = [error_details_pb2.BadRequest, error_details_pb2.RetryInfo, error_details_pb2.ErrorInfo]
    found = []
    for detail in status.details:
        kind = next(k for k in kinds if detail.Is(k.DESCRIPTOR))
        message = kind()
        detail.Unpack(message)
        found.append(message)
    return found


def test_every_domain_error_is_in_the_table():
    assert all_subclasses(errors.DomainError) == set(ERROR_TABLE)


def test_reasons_are_unique_upper_snake_case():
    reasons = [reason for _, reason in ERROR_TABLE.values()]
    assert len(set(reasons)) == len(reasons)
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*[A-Z0-9]", reason) for reason in [*reasons, INTERNAL[1]])


def test_docs_list_exactly_the_table():
    documented = re.findall(r"^\| `([A-Z_]+)` \| ([A-Z_]+) \|", DOCS, flags=re.MULTILINE)
    assert sorted(documented) == sorted(
        [(reason, code.name) for code, reason in ERROR_TABLE.values()] + [(INTERNAL[1], INTERNAL[0].name)]
    )


def test_field_errors_carry_bad_request_then_error_info():
    status = status_proto(errors.InvalidArgument([errors.FieldViolation("width", "must be a multiple of 8")]))
    bad_request, info = unpacked(status)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [(v.field, v.description) for v in bad_request.field_violations] == [("width", "must be a multiple of 8")]
    assert (info.reason, info.domain) == ("FIELD_VIOLATION", DOMAIN)
    assert status.message == "invalid request: width: must be a multiple of 8"


def test_retry_later_errors_say_when():
    retry, info = unpacked(status_proto(errors.ServerBusy()))
    assert retry.retry_delay.ToMilliseconds() == 1000 and info.reason == "SERVER_BUSY"


@pytest.mark.parametrize("error", [errors.GenerationNotFound("x"), errors.ApiKeyInvalid(), errors.ShuttingDown()])
def test_every_status_carries_its_reason(error):
    code, reason = code_and_reason(error)
    status = to_status(error)
    assert status.code is code
    (info,) = [d for d in unpacked(status_proto(error)) if isinstance(d, error_details_pb2.ErrorInfo)]
    assert info.reason == reason


def test_internal_errors_say_nothing_about_the_cause():
    status = internal_status()
    assert status.code is grpc.StatusCode.INTERNAL and status.details == "internal error"
