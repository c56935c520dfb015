"""gen/openapi.json: valid OpenAPI 3.1 with every HTTP binding of the public protos.

That it is what `make gen` makes now is test_contracts.test_gen_matches_protos.
"""

import copy
import json
import re
from pathlib import Path

import pytest
from google.api import annotations_pb2, field_behavior_pb2
from google.protobuf import descriptor_pb2
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = "#/components/schemas/"
VERBS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def spec() -> dict:
    return json.loads((ROOT / "gen/openapi.json").read_text())


@pytest.fixture(scope="module")
def public_file() -> descriptor_pb2.FileDescriptorProto:
    files = descriptor_pb2.FileDescriptorSet.FromString((ROOT / "gen/descriptor.pb").read_bytes()).file
    return next(f for f in files if f.name == "leo/generation/v1/generation.proto")


def _message(file, name):
    return next(m for m in file.message_type if m.name == name)


def _operations(spec):
    return [(verb, path, op) for path, item in spec["paths"].items() for verb, op in item.items() if verb in VERBS]


def test_is_valid_openapi_3_1(spec):
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_the_validator_rejects_a_broken_spec(spec):
    broken = copy.deepcopy(spec)
    del broken["paths"]["/v1/generations/{generation_id}"]["get"]["parameters"]
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_every_http_binding_is_a_route(spec, public_file):
    expected = set()
    for service in public_file.service:
        for method in service.method:
            rule = method.options.Extensions[annotations_pb2.http]
            for binding in [rule, *rule.additional_bindings]:
                verb = binding.WhichOneof("pattern")
                expected.add((verb, re.sub(r"\{(\w+)=[^}]*\}", r"{\1}", getattr(binding, verb))))
    routes = {(verb, path) for verb, path, _ in _operations(spec)}
    assert routes == expected
    assert {
        ("post", "/v1/generations"),
        ("post", "/api/generation"),
        ("get", "/api/generation/{generation_id}"),
        ("post", "/v1/generations/{generation_id}:cancel"),
        ("get", "/v1/generations/{generation_id}:watch"),
    } <= routes


def test_operation_ids_are_unique(spec):
    ids = [op["operationId"] for _, _, op in _operations(spec)]
    assert len(ids) == len(set(ids))


def test_generation_schema_is_the_json_mapping(spec, public_file):
    schema = spec["components"]["schemas"]["leo.generation.v1.Generation"]
    fields = _message(public_file, "Generation").field
    output_only = {
        f.json_name
        for f in fields
        if field_behavior_pb2.OUTPUT_ONLY in f.options.Extensions[field_behavior_pb2.field_behavior]
    }
    props = schema["properties"]
    assert set(props) == {f.json_name for f in fields}
    assert {"generationId", "createTime", "failureReason", "webhookUrl"} <= set(props)
    assert {name for name, prop in props.items() if prop.get("readOnly")} == output_only
    assert {"generationId", "status", "images", "createTime"} <= output_only
    assert props["createTime"] == {"type": "string", "format": "date-time", "readOnly": True}
    assert props["status"]["$ref"] == SCHEMAS + "leo.generation.v1.Status"
    assert props["images"]["items"] == {"$ref": SCHEMAS + "leo.generation.v1.Image"}
    assert props["width"]["type"] == "integer" and props["width"]["format"] == "int32"
    assert schema["description"] == "An image or video generation and its result."
    status = spec["components"]["schemas"]["leo.generation.v1.Status"]
    assert status["type"] == "string" and "STATUS_PENDING" in status["enum"]


def test_create_takes_the_request_as_body_and_an_idempotency_key(spec):
    for path in ("/v1/generations", "/api/generation"):
        create = spec["paths"][path]["post"]
        body = create["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": SCHEMAS + "leo.generation.v1.CreateGenerationRequest"}
        assert {"$ref": "#/components/parameters/IdempotencyKey"} in create["parameters"]
    request = spec["components"]["schemas"]["leo.generation.v1.CreateGenerationRequest"]
    assert request["required"] == ["prompt"]
    assert "requestId" in request["properties"]
    header = spec["components"]["parameters"]["IdempotencyKey"]
    assert (header["name"], header["in"], header["schema"]["format"]) == ("Idempotency-Key", "header", "uuid")


def test_path_and_query_parameters(spec):
    get = spec["paths"]["/v1/generations/{generation_id}"]["get"]
    assert get["parameters"] == [
        {
            "name": "generation_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": "UUID of the generation.",
        }
    ]
    listing = {p["name"]: p for p in spec["paths"]["/v1/generations"]["get"]["parameters"]}
    assert set(listing) == {"pageSize", "pageToken", "status"}
    assert all(p["in"] == "query" and not p["required"] for p in listing.values())
    assert listing["pageSize"]["schema"] == {"type": "integer", "format": "int32"}
    assert listing["status"]["schema"] == {"$ref": SCHEMAS + "leo.generation.v1.Status"}
    cancel = spec["paths"]["/v1/generations/{generation_id}:cancel"]["post"]
    assert cancel["requestBody"]["content"]["application/json"]["schema"]["properties"] == {}


def test_watch_is_server_sent_events(spec):
    ok = spec["paths"]["/v1/generations/{generation_id}:watch"]["get"]["responses"]["200"]
    assert list(ok["content"]) == ["text/event-stream"]
    data = ok["content"]["text/event-stream"]["x-itemSchema"]["properties"]["data"]
    assert data["contentSchema"] == {"$ref": SCHEMAS + "leo.generation.v1.WatchGenerationResponse"}
    get = spec["paths"]["/v1/generations/{generation_id}"]["get"]["responses"]["200"]
    assert list(get["content"]) == ["application/json"]


def test_errors_are_google_rpc_status(spec):
    for _, _, op in _operations(spec):
        for code in ("400", "401", "404", "409", "429", "500", "503"):
            assert op["responses"][code] == {"$ref": f"#/components/responses/{code}"}
    for response in spec["components"]["responses"].values():
        assert response["content"]["application/json"]["schema"] == {"$ref": SCHEMAS + "google.rpc.Status"}
    status = spec["components"]["schemas"]["google.rpc.Status"]
    assert set(status["properties"]) == {"code", "message", "details"}
    assert status["properties"]["code"]["type"] == "integer"
    assert status["properties"]["details"]["items"]["required"] == ["@type"]


def test_bearer_auth_everywhere_and_server(spec):
    assert spec["security"] == [{"bearerAuth": []}]
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer <key>`.",
    }
    assert spec["servers"] == [{"url": "http://localhost:8080"}]
    assert (spec["info"]["title"], spec["info"]["version"]) == ("Leo generation mesh API", "v1")
