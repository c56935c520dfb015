"""CreateGeneration input rules (pure logic)."""

import grpc
import pytest
from google.rpc import error_details_pb2
from leo.generation.v1 import generation_pb2

from api_server.validation import parse_generation_id, validate_create
from leo_mesh.db.models import CoreModel
from leo_mesh.status import RpcError


def violations(error: RpcError) -> dict[str, str]:
    (detail,) = error.details
    assert isinstance(detail, error_details_pb2.BadRequest)
    return {v.field: v.description for v in detail.field_violations}


def request(**fields):
    return generation_pb2.CreateGenerationRequest(**{"prompt": "a red fox", **fields})


def test_defaults_are_the_seeds():
    new = validate_create(request())
    assert (new.prompt, new.model, new.width, new.height) == ("a red fox", CoreModel.SDXL, 1024, 1024)


def test_explicit_values_are_kept():
    new = validate_create(request(model=generation_pb2.MODEL_SD, width=512, height=768))
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
        validate_create(request(**fields))
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    found = violations(caught.value)
    assert list(found) == [field]
    assert words in found[field]
    assert field in caught.value.message


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(RpcError) as caught:
        validate_create(request(prompt="", width=1, height=1))
    assert set(violations(caught.value)) == {"prompt", "width", "height"}


def test_prompt_of_exactly_1500_characters_is_fine():
    assert len(validate_create(request(prompt="é" * 1500)).prompt) == 1500


def test_generation_id_must_be_a_uuid():
    assert str(parse_generation_id("8f1f5e7e-3c8e-4b8e-9d5e-7f0a1b2c3d4e")) == "8f1f5e7e-3c8e-4b8e-9d5e-7f0a1b2c3d4e"
    with pytest.raises(RpcError) as caught:
        parse_generation_id("not-a-uuid")
    assert violations(caught.value) == {"generation_id": "must be a UUID"}
