"""CreateGeneration input rules (pure logic)."""

import grpc
import pytest

from api_server.validation import (
    page_size,
    parse_generation_id,
    status_filter,
    validate_create,
)
from leo.generation.v1 import generation_pb2
from leo_mesh.errors import InvalidArgument as RpcError
from leo_mesh.rules import Model as CoreModel
from leo_mesh.status import code_and_reason


def violations(error: RpcError) -> dict[str, str]:
    return {v.field: v.description for v in error.violations}


def request(**fields):
    return generation_pb2.CreateGenerationRequest(**{"prompt": "a red fox", **fields})


def validate(message, idempotency_key=None):
    return validate_create(message, owner="alice", idempotency_key=idempotency_key)


def test_defaults_are_the_seeds():
    new = validate(request())
    assert (new.prompt, new.model, new.width, new.height) == ("a red fox", CoreModel.SDXL, 1024, 1024)


def test_explicit_values_are_kept():
    new = validate(request(model=generation_pb2.MODEL_SD, width=512, height=768))
    assert (new.model, new.width, new.height) == (CoreModel.SD, 512, 768)


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"prompt": ""}, "prompt", "required"),
        ({"prompt": "   \n\t"}, "prompt", "blank"),
        ({"prompt": "x" * 1501}, "prompt", "at most 1500"),
        ({"prompt": "a\x00b"}, "prompt", "NUL"),
        ({"model": 7}, "model", "MODEL_SD or MODEL_SDXL"),
        ({"width": 63}, "width", "multiple of 8 from 64 to 2048"),
        ({"width": 2056}, "width", "multiple of 8"),
        ({"height": -8}, "height", "multiple of 8"),
        ({"height": 100}, "height", "multiple of 8"),
    ],
)
def test_bad_field_is_named(fields, field, words):
    with pytest.raises(RpcError) as caught:
        validate(request(**fields))
    assert code_and_reason(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_VIOLATION")
    found = violations(caught.value)
    assert list(found) == [field]
    assert words in found[field]
    assert field in caught.value.message


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(RpcError) as caught:
        validate(request(prompt="", width=1, height=1))
    assert set(violations(caught.value)) == {"prompt", "width", "height"}


def test_prompt_of_exactly_1500_characters_is_fine():
    assert len(validate(request(prompt="é" * 1500)).prompt) == 1500


def test_generation_id_must_be_a_uuid():
    assert str(parse_generation_id("8f1f5e7e-3c8e-4b8e-9d5e-7f0a1b2c3d4e")) == "8f1f5e7e-3c8e-4b8e-9d5e-7f0a1b2c3d4e"
    with pytest.raises(RpcError) as caught:
        parse_generation_id("not-a-uuid")
    assert violations(caught.value) == {"generation_id": "must be a UUID"}


def test_request_id_and_idempotency_key_mean_the_same():
    key = "0b0e6f5c-8b0a-4c7e-9a3e-2f4f0f6a9d11"
    assert str(validate(request(request_id=key)).request_id) == key
    assert str(validate(request(), idempotency_key=key).request_id) == key
    assert str(validate(request(request_id=key), idempotency_key=key).request_id) == key
    assert validate(request()).request_id is None


@pytest.mark.parametrize(
    "request_id, header, field",
    [
        ("nope", None, "request_id"),
        ("", "nope", "Idempotency-Key"),
        ("0b0e6f5c-8b0a-4c7e-9a3e-2f4f0f6a9d11", "1b0e6f5c-8b0a-4c7e-9a3e-2f4f0f6a9d11", "request_id"),
    ],
)
def test_bad_request_ids(request_id, header, field):
    with pytest.raises(RpcError) as caught:
        validate(request(request_id=request_id), idempotency_key=header)
    assert list(violations(caught.value)) == [field]


def test_same_parameters_same_fingerprint_and_others_differ():
    base = validate(request())
    assert base.fingerprint() == validate(request()).fingerprint()
    assert base.fingerprint() != validate(request(prompt="another")).fingerprint()
    assert base.fingerprint() != validate(request(width=512)).fingerprint()


@pytest.mark.parametrize("given, taken", [(0, 20), (1, 1), (100, 100), (101, 100), (10_000, 100)])
def test_page_size(given, taken):
    assert page_size(given) == taken


def test_negative_page_size_and_unknown_status_are_invalid():
    with pytest.raises(RpcError) as caught:
        page_size(-1)
    assert list(violations(caught.value)) == ["page_size"]
    with pytest.raises(RpcError) as caught:
        status_filter(99)
    assert list(violations(caught.value)) == ["status"]
    assert status_filter(generation_pb2.STATUS_UNSPECIFIED) is None
