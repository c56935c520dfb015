"""Request field rules (pure logic), and that the spec states the same ones."""

import hashlib
import json
import re
import uuid
from pathlib import Path

import grpc
import jsonschema_rs
import pytest
from google.protobuf import json_format
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from api_server.validation import (
    FORMATS,
    page_size,
    parse_asset_request,
    parse_generation_id,
    rules_of,
    status_filter,
    validate_create,
)
from leo.api.v1 import field_rules_pb2
from leo.generation.v1 import generation_pb2
from leo_mesh import wire
from leo_mesh.db.models import PROMPT_MAX_LENGTH
from leo_mesh.errors import InvalidArgument as RpcError
from leo_mesh.rules import Kind as CoreKind
from leo_mesh.rules import Model as CoreModel
from leo_mesh.scheduling import Priority
from leo_mesh.status import code_and_reason


def violations(error: RpcError) -> dict[str, str]:
    return {v.field: v.description for v in error.violations}


def request(**fields):
    return generation_pb2.CreateGenerationRequest(**{"prompt": "a red fox", **fields})


def validate(message, idempotency_key=None, max_priority=Priority.NORMAL):
    return validate_create(message, owner="alice", idempotency_key=idempotency_key, max_priority=max_priority)


def test_defaults_are_the_seeds():
    new = validate(request())
    assert (new.prompt, new.model, new.width, new.height) == ("a red fox", CoreModel.SDXL, 1024, 1024)
    assert new.kind is CoreKind.IMAGE and new.priority is Priority.NORMAL


@pytest.mark.parametrize(
    "asked, allowed, accepted",
    [
        (generation_pb2.PRIORITY_LOW, Priority.NORMAL, True),
        (generation_pb2.PRIORITY_NORMAL, Priority.NORMAL, True),
        (generation_pb2.PRIORITY_HIGH, Priority.NORMAL, False),
        (generation_pb2.PRIORITY_HIGH, Priority.HIGH, True),
        (generation_pb2.PRIORITY_NORMAL, Priority.LOW, False),
    ],
)
def test_a_create_asks_for_at_most_the_priority_its_key_allows(asked, allowed, accepted):
    message = request(priority=asked, width=1001)
    with pytest.raises(RpcError) as refused:
        validate(message, max_priority=allowed)
    problems = violations(refused.value)
    assert "width" in problems  # every bad field is named at once
    if accepted:
        assert "priority" not in problems
        assert validate(request(priority=asked), max_priority=allowed).priority is wire.PRIORITY.from_wire(asked)
    else:
        name = generation_pb2.Priority.Name(wire.PRIORITY.to_wire(allowed))
        assert problems["priority"] == f"must be at most {name} for this API key"


def test_explicit_values_are_kept():
    new = validate(request(model=generation_pb2.MODEL_SD, width=512, height=768, kind=generation_pb2.KIND_VIDEO))
    assert (new.model, new.width, new.height, new.kind) == (CoreModel.SD, 512, 768, CoreKind.VIDEO)


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"prompt": ""}, "prompt", "required"),
        ({"prompt": "   \n\t"}, "prompt", "blank"),
        ({"prompt": "x" * 1501}, "prompt", "at most 1500"),
        ({"prompt": "a\x00b"}, "prompt", "NUL"),
        ({"model": 7}, "model", "MODEL_SD or MODEL_SDXL"),
        ({"kind": 3}, "kind", "KIND_IMAGE or KIND_VIDEO"),
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
        # An empty field is an unset one; a header sent empty is no UUID (the spec says "format: uuid").
        ("", "", "Idempotency-Key"),
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
    assert base.fingerprint() != validate(request(kind=generation_pb2.KIND_VIDEO)).fingerprint()
    # An explicit IMAGE asks for what leaving the kind out asks for.
    assert base.fingerprint() == validate(request(kind=generation_pb2.KIND_IMAGE)).fingerprint()


def test_a_fingerprint_made_before_kinds_existed_still_matches():
    """The digest of an IMAGE create is what it was before the kind was added."""
    new = validate(request(model=generation_pb2.MODEL_SD, width=512, height=768))
    assert new.fingerprint() == hashlib.sha256(b"a red fox\x1fSD\x1f512\x1f768\x1f").hexdigest()


def test_an_asset_request_is_checked_field_by_field():
    good = generation_pb2.GetGenerationAssetRequest(generation_id="3fa85f64-5717-4562-b3fc-2c963f66afa6", index=1)
    assert parse_asset_request(good) == (uuid.UUID(good.generation_id), 1)
    bad = generation_pb2.GetGenerationAssetRequest(generation_id="x", index=-1, signature="s" * 129)
    with pytest.raises(RpcError) as caught:
        parse_asset_request(bad)
    assert violations(caught.value) == {
        "generation_id": "must be a UUID",
        "index": "must be at least 0",
        "signature": "must be at most 128 characters (got 129)",
    }


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


# --- The spec states the same rules the service enforces ---
#
# For each input the spec constrains, values at and around every bound the
# spec names (and values of the kinds the rules are about) must be valid
# per the spec exactly when the service accepts them. The JSON values are
# read as Envoy does (the proto3 JSON mapping: null leaves a field unset).

SPEC = json.loads((Path(__file__).resolve().parents[2] / "gen/openapi.json").read_text())
SCHEMAS = SPEC["components"]["schemas"]
UUID = "8f1f5e7e-3c8e-4b8e-9d5e-7f0a1b2c3d4e"
STRINGS = [
    "",
    " ",
    "\t\n",
    "\u3000",
    "\x1c",
    "\ufeff",
    "a",
    "a b",
    "\x00",
    "a\x00b",
    "é",
    "😀",
    UUID,
    UUID.upper(),
    UUID.replace("-", ""),
    f"{{{UUID}}}",
    f"urn:uuid:{UUID}",
    UUID + "\n",
    UUID[:-1] + "g",
    "http://example.com/hook",
    "HTTPS://h",
    "https://h:8443/p?q#f",
    "ftp://h",
    "http:///p",
    "http://",
    "http://h\x00",
    "//h",
    "mailto:a@b",
]
# Other JSON kinds. Python's json_format stands in for Envoy's parser here; it
# reads true and 1.5 as enum numbers where Envoy refuses them, so those are
# left to the fuzzer (tests/e2e/test_schemathesis.py).
JSON_KINDS = [None, [], {}]


def spec_accepts(schema: dict, value) -> bool:
    """JSON Schema's verdict, as schemathesis reaches it (jsonschema-rs, formats checked)."""
    return jsonschema_rs.validator_for({"components": SPEC["components"], **schema}, validate_formats=True).is_valid(
        value
    )


def bounds(schema) -> set[int]:
    """Every number the schema names (minimum, maxLength, const, multipleOf …), nested ones too."""
    if isinstance(schema, dict):
        return {n for key, value in schema.items() for n in bounds(value) if key not in ("format", "type")}
    if isinstance(schema, list):
        return {n for item in schema for n in bounds(item)}
    return {schema} if isinstance(schema, int) and not isinstance(schema, bool) else set()


def values_of(keyword: str, schema) -> list:
    """Every value of `keyword` in the schema, nested ones too."""
    if isinstance(schema, list):
        return [found for item in schema for found in values_of(keyword, item)]
    if not isinstance(schema, dict):
        return []
    nested = [found for value in schema.values() for found in values_of(keyword, value)]
    return [schema[keyword], *nested] if keyword in schema else nested


def rule_numbers(message, json_name: str) -> set[int]:
    """The numbers in the rules of message's field with that JSON name."""
    field = next(f for f in message.DESCRIPTOR.fields if f.json_name == json_name)
    rules = rules_of(field)
    members = ("min_length", "max_length", "minimum", "maximum", "multiple_of")
    return {getattr(rules, m) for m in members if rules and rules.HasField(m)}


def around(schema: dict, rules: set[int] = frozenset()) -> list:
    """Values at, just below and just above every bound of the schema and of the service's rules."""
    numbers = {n + step for n in bounds(schema) | rules | {0} for step in (-1, 0, 1)}
    lengths = [n for n in sorted(numbers) if 0 <= n <= 5000]
    texts = ["x" * n for n in lengths] + [f"http://{'h' * (n - 7)}" for n in lengths if n > 8]
    return sorted(numbers) + [n * 8 for n in range(-2, 260)] + texts + STRINGS + JSON_KINDS


def service_accepts_body(field: str, value) -> bool:
    """As a key allowed every priority would be answered: the spec says what
    any key may send; what a key allows is its own rule (tested apart)."""
    body = {"prompt": "a red fox", field: value}
    try:
        validate(json_format.ParseDict(body, generation_pb2.CreateGenerationRequest()), max_priority=Priority.HIGH)
    except (json_format.ParseError, RpcError):
        return False
    return True


def body_fields():
    request = SCHEMAS["leo.generation.v1.CreateGenerationRequest"]["properties"]
    return [pytest.param(name, schema, id=name) for name, schema in request.items()]


@pytest.mark.parametrize("field, schema", body_fields())
def test_spec_and_service_agree_on_create_fields(field, schema):
    values = around(schema, rule_numbers(generation_pb2.CreateGenerationRequest, field))
    disagree = [v for v in values if spec_accepts(schema, v) != service_accepts_body(field, v)]
    assert not disagree, f"{field}: spec and service disagree on {disagree[:5]}"


def test_spec_and_service_agree_on_the_idempotency_key_header():
    schema = SPEC["components"]["parameters"]["IdempotencyKey"]["schema"]

    def accepted(value) -> bool:
        try:
            validate(request(), idempotency_key=value)
        except RpcError:
            return False
        return True

    rules = rule_numbers(generation_pb2.CreateGenerationRequest, "requestId")
    texts = [v for v in around(schema, rules) if isinstance(v, str)]
    assert [v for v in texts if spec_accepts(schema, v) != accepted(v)] == []


def parameter(path: str, name: str) -> dict:
    operation = next(iter(SPEC["paths"][path].values()))
    return next(p for p in operation["parameters"] if p.get("name") == name)["schema"]


def accepts(check, value) -> bool:
    try:
        check(value)
    except RpcError:
        return False
    return True


@pytest.mark.parametrize("path", [p for p in SPEC["paths"] if "{generation_id}" in p])
def test_spec_and_service_agree_on_generation_ids(path):
    schema = parameter(path, "generation_id")
    rules = rule_numbers(generation_pb2.GetGenerationRequest, "generationId")
    texts = [v for v in around(schema, rules) if isinstance(v, str)]
    assert [v for v in texts if spec_accepts(schema, v) != accepts(parse_generation_id, v)] == []


def test_spec_and_service_agree_on_list_parameters():
    size = parameter("/v1/generations", "pageSize")
    rules = rule_numbers(generation_pb2.ListGenerationsRequest, "pageSize")
    numbers = [v for v in around(size, rules) if isinstance(v, int) and abs(v) < 2**31]
    assert [v for v in numbers if spec_accepts(size, v) != accepts(page_size, v)] == []
    status = parameter("/v1/generations", "status")
    values = [*range(-2, 8), *generation_pb2.Status.keys(), "STATUS_NOPE", "pending", "1"]

    def service(value) -> bool:
        try:
            parsed = json_format.ParseDict({"status": value}, generation_pb2.ListGenerationsRequest())
        except json_format.ParseError:
            return False
        return accepts(status_filter, parsed.status)

    # A query parameter is text: "1" is the number 1 there, so only JSON values are compared.
    assert [v for v in values[:-1] if spec_accepts(status, v) != service(v)] == []


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(["prompt", "width", "height", "requestId", "webhookUrl", "model"]),
    value=st.none() | st.integers(-5000, 5000) | st.text(max_size=40) | st.sampled_from(STRINGS),
)
def test_spec_and_service_agree_on_any_value(field, value):
    schema = SCHEMAS["leo.generation.v1.CreateGenerationRequest"]["properties"][field]
    # Integers given as JSON strings are a proto3 JSON leniency the spec does not describe.
    assume(not (isinstance(value, str) and field in ("width", "height", "model")))
    assert spec_accepts(schema, value) == service_accepts_body(field, value)


def test_patterns_mean_the_same_to_json_schema_and_python():
    """The service searches with Python's re, JSON Schema tools with ECMA-262 regexes."""
    patterns = set(values_of("pattern", SPEC))
    assert len(patterns) >= 3
    values = [*STRINGS, *map(chr, range(0x3100)), "xyz\n", "\nxyz"]
    for pattern in patterns:
        validator = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
        differ = [v for v in values if validator.is_valid(v) != (re.search(pattern, v) is not None)]
        assert differ == [], pattern


@pytest.mark.parametrize(
    ("mapped", "wire_type"),
    [(wire.MODEL, generation_pb2.Model), (wire.KIND, generation_pb2.Kind), (wire.STATUS, generation_pb2.Status)],
)
def test_every_enum_value_but_unspecified_has_its_meaning_here(mapped, wire_type):
    meant = {number for number in wire_type.values() if mapped.from_wire(number) is not None}
    assert meant | {0} == set(wire_type.values())
    assert mapped.from_wire(0) is None


def test_the_database_holds_the_longest_prompt():
    prompt = generation_pb2.CreateGenerationRequest.DESCRIPTOR.fields_by_name["prompt"]
    assert rules_of(prompt).max_length == PROMPT_MAX_LENGTH


def test_every_generation_id_has_the_same_rules():
    """parse_generation_id serves every request with a generation_id."""
    found = {
        message.name: rules_of(message.fields_by_name["generation_id"])
        for message in generation_pb2.DESCRIPTOR.message_types_by_name.values()
        if message.name.endswith("Request") and "generation_id" in message.fields_by_name
    }
    assert set(found) == {
        "GetGenerationRequest",
        "CancelGenerationRequest",
        "WatchGenerationRequest",
        "GetGenerationAssetRequest",
    }
    assert len({rules.SerializeToString() for rules in found.values()}) == 1


def test_every_format_has_a_check():
    assert set(FORMATS) == set(field_rules_pb2.Format.values()) - {field_rules_pb2.FORMAT_UNSPECIFIED}
