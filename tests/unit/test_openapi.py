"""gen/openapi.json: valid OpenAPI 3.1 with every HTTP binding of the public protos.

That it is what `make gen` makes now is test_contracts.test_gen_matches_protos.
"""

import copy
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from google.api import annotations_pb2, field_behavior_pb2
from google.protobuf import descriptor_pb2
from hypothesis import given
from hypothesis import strategies as st
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import openapi  # noqa: E402  (tools/openapi.py, not a package)

import protos  # noqa: E402

SCHEMAS = "#/components/schemas/"
VERBS = {"get", "put", "post", "delete", "patch"}
UNSET_STRING = {"type": "string", "const": "", "description": "Unset, as when the field is left out."}
UNSET_INTEGER = {**UNSET_STRING, "type": "integer", "const": 0}
NULL = {"type": "null"}
INT32 = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}


@pytest.fixture(scope="module")
def spec() -> dict:
    return json.loads((ROOT / "gen/openapi.json").read_text())


@pytest.fixture(scope="module")
def public_file() -> descriptor_pb2.FileDescriptorProto:
    files = descriptor_pb2.FileDescriptorSet.FromString((ROOT / "gen/leo-api.binpb").read_bytes()).file
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
    assert props["createTime"] == {
        "type": "string",
        "format": "date-time",
        "readOnly": True,
        # A timestamp has presence: not `required`, so the note is there (it is always set).
        "description": "When the generation was created. " + openapi.UNSET_IN_RESPONSE,
    }
    assert props["generationId"]["format"] == "uuid"
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
    assert (header["name"], header["in"]) == ("Idempotency-Key", "header")
    # requestId's rules without its zero: a header is left out for none, and an empty one is refused.
    assert header["schema"] == {"type": "string", "format": "uuid"}
    assert "an empty value is refused" in header["description"]
    # The field: a UUID, or empty (or null) for none; each alternative typed.
    uuid_or_unset = [UNSET_STRING, {"type": "string", "format": "uuid"}, NULL]
    assert request["properties"]["requestId"]["anyOf"] == uuid_or_unset


def test_path_and_query_parameters(spec):
    get = spec["paths"]["/v1/generations/{generation_id}"]["get"]
    assert get["parameters"] == [
        {
            "name": "generation_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
            "description": "UUID of the generation.",
        }
    ]
    listing = {p["name"]: p for p in spec["paths"]["/v1/generations"]["get"]["parameters"]}
    assert set(listing) == {"pageSize", "pageToken", "status"}
    assert all(p["in"] == "query" and not p["required"] for p in listing.values())
    assert listing["pageSize"]["schema"] == {**INT32, "minimum": 0}
    # A query parameter takes an enum by name or by number, as grpc-gateway does.
    assert listing["status"]["schema"] == {
        "anyOf": [
            {"$ref": SCHEMAS + "leo.generation.v1.Status"},
            {"type": "integer", "enum": [0, 1, 2, 3, 4], "description": "The same values by number."},
        ]
    }
    cancel = spec["paths"]["/v1/generations/{generation_id}:cancel"]["post"]
    assert cancel["requestBody"]["content"]["application/json"]["schema"]["properties"] == {}


def test_create_fields_carry_the_rules_of_the_protos(spec):
    props = spec["components"]["schemas"]["leo.generation.v1.CreateGenerationRequest"]["properties"]
    prompt = props["prompt"]
    assert (prompt["type"], prompt["minLength"], prompt["maxLength"]) == ("string", 1, 1500)
    not_blank, no_nul = (item["pattern"] for item in prompt["allOf"])
    assert re.search(not_blank, " x ") and not re.search(not_blank, " \t\n\u3000")
    assert no_nul == "^[^\\u0000]*$"
    # 0 (unset) or 64..2048 in steps of 8; null leaves the field unset too.
    assert props["width"] == props["height"]
    assert {key: props["width"][key] for key in ("type", "minimum", "maximum", "multipleOf")} == {
        "type": ["integer", "null"],
        "minimum": -(2**31),
        "maximum": 2048,
        "multipleOf": 8,
    }
    # Each alternative has the field's type: client generators make an integer of it, not Any.
    assert props["width"]["anyOf"] == [UNSET_INTEGER, {"type": "integer", "minimum": 64}, NULL]
    assert props["requestId"]["anyOf"] == [UNSET_STRING, {"type": "string", "format": "uuid"}, NULL]
    webhook = props["webhookUrl"]
    assert (webhook["type"], webhook["maxLength"], webhook["pattern"]) == (["string", "null"], 2048, no_nul)
    http_url = {"type": "string", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]"}
    assert webhook["anyOf"] == [UNSET_STRING, http_url, NULL]
    assert props["model"]["anyOf"] == [
        {"$ref": SCHEMAS + "leo.generation.v1.Model"},
        {"type": "integer", "enum": [0, 1, 2], "description": "The same values by number."},
        {"type": "null"},
    ]


def test_responses_write_enums_by_name_and_every_field_without_presence(spec):
    generation = spec["components"]["schemas"]["leo.generation.v1.Generation"]
    assert generation["properties"]["model"] == {
        "$ref": SCHEMAS + "leo.generation.v1.Model",
        "description": "The model that runs (or ran) the generation.",
    }
    timestamps = {"createTime", "updateTime", "completeTime", "startTime"}
    timestamps |= {"estimatedStartTime", "estimatedCompleteTime"}
    with_presence = {"queuePosition", "progress"}  # proto3 optional: written only when set
    assert set(generation["required"]) == set(generation["properties"]) - timestamps - with_presence
    assert '"null"' not in json.dumps(generation)  # no JSON null type anywhere


def _output_schemas(spec) -> list[dict]:
    """The schemas of the public messages responses carry."""
    schemas = spec["components"]["schemas"]
    return [
        schema
        for name, schema in schemas.items()
        if name.startswith("leo.generation.v1.") and schema.get("type") == "object" and not name.endswith("Request")
    ]


def test_a_field_with_presence_is_left_out_while_unset_never_null(spec):
    """The transcoder writes no unset message field (grpc-gateway's
    EmitUnpopulated would write null): the spec says so where it applies."""
    assert "never null" in spec["info"]["description"]
    completed = spec["components"]["schemas"]["leo.generation.v1.Generation"]["properties"]["completeTime"]
    assert completed["description"] == "Set once the generation reached a final state. " + openapi.UNSET_IN_RESPONSE
    for schema in _output_schemas(spec):
        for name, field in schema["properties"].items():
            optional = name not in schema.get("required", [])
            assert optional == field.get("description", "").endswith(openapi.UNSET_IN_RESPONSE), name
            assert '"null"' not in json.dumps(field), name


# The JSON mapping's 64-bit integer strings, as the transcoder reads them.
@pytest.mark.parametrize(("low", "high"), [(-(2**63), 2**63 - 1), (0, 2**64 - 1), (-5, 1000), (0, 9)])
@given(number=st.integers(-(2**65), 2**65) | st.integers(-20, 20))
def test_a_decimal_pattern_holds_exactly_its_range(low, high, number):
    pattern = re.compile(openapi.decimal_pattern(low, high))
    assert bool(pattern.match(str(number))) is (low <= number <= high)
    assert not pattern.match(f"0{abs(number)}") and not pattern.match(f"+{abs(number)}")


def test_no_64_bit_integer_of_the_spec_is_unbounded(spec):
    text = json.dumps(spec)
    assert '"format": "int64"' in text and "[0-9]+$" not in text


def test_watch_is_server_sent_events(spec):
    watch = spec["paths"]["/v1/generations/{generation_id}:watch"]["get"]
    ok = watch["responses"]["200"]
    assert list(ok["content"]) == ["text/event-stream"]
    # The stream as text: a generated client returns it whole (as an object it could not parse it).
    events = ok["content"]["text/event-stream"]
    assert events["schema"] == {"type": "string", "description": "The events, as text."}
    # One event, as OpenAPI 3.2's itemSchema says it.
    event = events["x-itemSchema"]
    assert (event["type"], event["required"]) == ("object", ["data", "id", "retry"])
    assert event["properties"]["data"] == {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": SCHEMAS + "leo.generation.v1.WatchGenerationResponse"},
    }
    assert "`id:`" in ok["description"] and "`retry:`" in ok["description"]
    assert set(ok["headers"]) == {"Cache-Control"}
    # Resuming: Last-Event-ID, and 204 once the final event was delivered.
    assert {"$ref": "#/components/parameters/LastEventId"} in watch["parameters"]
    last_event_id = spec["components"]["parameters"]["LastEventId"]
    assert (last_event_id["name"], last_event_id["in"], last_event_id["schema"]) == (
        "Last-Event-ID",
        "header",
        {"type": "string"},
    )
    assert (
        "content" not in watch["responses"]["204"] and "stops reconnecting" in watch["responses"]["204"]["description"]
    )
    get = spec["paths"]["/v1/generations/{generation_id}"]["get"]["responses"]
    assert list(get["200"]["content"]) == ["application/json"] and "204" not in get


def test_the_legacy_routes_are_deprecated_with_operation_ids_of_their_own(spec):
    operations = {(verb, path): op for verb, path, op in _operations(spec)}
    legacy = {key: op for key, op in operations.items() if op.get("deprecated")}
    assert set(legacy) == {("post", "/api/generation"), ("get", "/api/generation/{generation_id}")}
    assert legacy["post", "/api/generation"]["operationId"] == "GenerationService_CreateGeneration_Legacy"
    assert legacy["get", "/api/generation/{generation_id}"]["operationId"] == "GenerationService_GetGeneration_Legacy"
    assert operations["post", "/v1/generations"]["operationId"] == "GenerationService_CreateGeneration"
    assert not any(op["operationId"][-1].isdigit() for op in operations.values())


def test_errors_are_google_rpc_status_and_each_operation_lists_its_own(spec):
    every = {"400", "401", "408", "429", "431", "500", "503", "504"}
    expected = {
        ("post", "/v1/generations"): every | {"409", "413"},
        ("post", "/api/generation"): every | {"409", "413"},
        ("get", "/v1/generations"): every,
        ("get", "/v1/generations/{generation_id}"): every | {"404"},
        ("get", "/api/generation/{generation_id}"): every | {"404"},
        ("post", "/v1/generations/{generation_id}:cancel"): every | {"404", "413"},
        ("get", "/v1/generations/{generation_id}:watch"): every | {"403", "404"},
        ("post", "/v1/webhookSecret:rotate"): every | {"413"},
        ("get", "/v1/generations/{generation_id}/assets/{index}"): every | {"403", "404"},
    }
    for verb, path, op in _operations(spec):
        errors = {code for code in op["responses"] if not code.startswith("2")}
        assert errors == expected[verb, path], (verb, path)
        assert all(op["responses"][code] == {"$ref": f"#/components/responses/{code}"} for code in errors)
    for response in spec["components"]["responses"].values():
        assert response["content"]["application/json"]["schema"] == {"$ref": SCHEMAS + "google.rpc.Status"}
    status = spec["components"]["schemas"]["google.rpc.Status"]
    assert set(status["properties"]) == {"code", "message", "details"}
    assert status["properties"]["code"]["type"] == "integer"
    assert status["properties"]["details"]["items"]["required"] == ["@type"]


def test_comments_describe_every_operation_field_and_enum_value(spec, public_file):
    for _, _, op in _operations(spec):
        assert op["summary"] and " ".join(op["description"].split()).startswith(op["summary"])
    create = spec["paths"]["/v1/generations"]["post"]
    assert create["summary"] == "Records a generation as PENDING and answers at once; the work happens asynchronously."
    for name, schema in spec["components"]["schemas"].items():
        assert schema.get("description"), name
        for field, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field}"
    for enum in public_file.enum_type:
        schema = spec["components"]["schemas"][f"leo.generation.v1.{enum.name}"]
        assert set(schema["x-enumDescriptions"]) == {value.name for value in enum.value}
        assert all(schema["x-enumDescriptions"].values())
        assert all(f"- `{value.name}`: " in schema["description"] for value in enum.value)
    parameters = [p for _, _, op in _operations(spec) for p in op.get("parameters", []) if "name" in p]
    assert parameters and all(p["description"] for p in parameters)


def test_bearer_auth_everywhere_and_server(spec):
    assert spec["security"] == [{"bearerAuth": []}]
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer <key>`.",
    }
    assert spec["servers"] == [{"url": "http://localhost:8080"}]
    assert (spec["info"]["title"], spec["info"]["version"]) == ("Leo generation mesh API", "v1")


def spec_of_edited_protos(tmp_path: Path, edits: dict[str, str]) -> dict:
    """The spec made from a copy of protos/ with each `old` of the public file replaced by its `new`."""
    copy = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", copy)
    proto = copy / "leo/generation/v1/generation.proto"
    text = proto.read_text()
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    proto.write_text(text)
    protos.write_openapi(protos.our_protos(copy), tmp_path / "openapi.json", copy)
    return json.loads((tmp_path / "openapi.json").read_text())


def test_new_fields_and_their_rules_need_no_code(tmp_path):
    """A new enum, a new constrained request field and a new output message
    reach the spec by their protos alone."""
    spec = spec_of_edited_protos(
        tmp_path,
        {
            "// Models the AI backend can run.": (
                "// How a generation looks.\nenum Style {\n  // Not chosen.\n  STYLE_UNSPECIFIED = 0;\n"
                "  // Photos.\n  STYLE_PHOTO = 1;\n  // A drawing.\n  STYLE_DRAWING = 2;\n}\n\n"
                "// A sketch made first.\nmessage Sketch {\n  // Where it is.\n"
                "  string url = 1 [(leo.api.v1.rules) = {max_length: 100}];\n}\n\n"
                "// Models the AI backend can run."
            ),
            "  string webhook_url = 13;\n": (
                "  string webhook_url = 13;\n  // What it sketched.\n"
                "  repeated Sketch sketches = 30 [(google.api.field_behavior) = OUTPUT_ONLY];\n"
            ),
            "message CreateGenerationRequest {\n": (
                "message CreateGenerationRequest {\n  // How it looks.\n  Style style = 30;\n"
                "  // How many: 1 to 4.\n  int32 count = 31 [(leo.api.v1.rules) = {minimum: 1, maximum: 4}];\n"
            ),
        },
    )
    validate(spec)
    schemas = spec["components"]["schemas"]
    request = schemas["leo.generation.v1.CreateGenerationRequest"]["properties"]
    assert request["count"] == {**INT32, "type": ["integer", "null"], "minimum": 1, "maximum": 4} | {
        "description": "How many: 1 to 4."
    }
    assert request["style"]["anyOf"][:2] == [
        {"$ref": SCHEMAS + "leo.generation.v1.Style"},
        {"type": "integer", "enum": [0, 1, 2], "description": "The same values by number."},
    ]
    assert schemas["leo.generation.v1.Style"]["x-enumDescriptions"]["STYLE_DRAWING"] == "A drawing."
    sketches = schemas["leo.generation.v1.Generation"]["properties"]["sketches"]
    assert sketches["items"] == {"$ref": SCHEMAS + "leo.generation.v1.Sketch"} and sketches["readOnly"]
    assert schemas["leo.generation.v1.Sketch"]["properties"]["url"]["maxLength"] == 100


def test_an_asset_download_is_the_file_itself(spec):
    """GetGenerationAsset returns google.api.HttpBody: the body is the file, not JSON."""
    download = spec["paths"]["/v1/generations/{generation_id}/assets/{index}"]["get"]
    ok = download["responses"]["200"]
    # application/octet-stream: what client generators read any file as (openapi-python-client
    # leaves a response of image types out).
    assert set(ok["content"]) == {"image/png", "image/webp", "application/octet-stream"}
    assert all(media["schema"] == {"type": "string", "format": "binary"} for media in ok["content"].values())
    assert set(ok["headers"]) == {"ETag", "Cache-Control"}
    parameters = {p["name"]: p for p in download["parameters"]}
    assert (parameters["index"]["in"], parameters["index"]["schema"]["minimum"]) == ("path", 0)
    assert {parameters["expires"]["in"], parameters["signature"]["in"]} == {"query"}
    assert parameters["signature"]["schema"]["maxLength"] == 128
    # proto3 JSON's int64 is a string of digits within int64's range ("" is no expiry).
    int64 = openapi.decimal_pattern(-(2**63), 2**63 - 1)
    assert parameters["expires"]["schema"] == {"type": "string", "format": "int64", "pattern": int64}
    # The API key, or a signed link instead; every operation but the download and the watch needs the key.
    assert download["security"] == [{"bearerAuth": []}, {"signedLink": []}]
    scheme = spec["components"]["securitySchemes"]["signedLink"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "query", "signature")
    linked = {path for _, path, op in _operations(spec) if "security" in op}
    assert linked == {"/v1/generations/{generation_id}/assets/{index}", "/v1/generations/{generation_id}:watch"}
    # buf's lint directive in the method's comment is not part of its description.
    assert "buf:lint" not in json.dumps(spec)
    assert "google.api.HttpBody" not in spec["components"]["schemas"]


def test_a_generation_shows_its_kind_assets_and_progress(spec):
    schemas = spec["components"]["schemas"]
    generation = schemas["leo.generation.v1.Generation"]["properties"]
    assert generation["kind"]["$ref"] == SCHEMAS + "leo.generation.v1.Kind"
    assert generation["assets"]["items"] == {"$ref": SCHEMAS + "leo.generation.v1.Asset"}
    assert all(generation[name]["readOnly"] for name in ("assets", "queuePosition", "progress"))
    asset = schemas["leo.generation.v1.Asset"]
    assert set(asset["properties"]) == {
        "url",
        "urlExpireTime",
        "contentType",
        "width",
        "height",
        "byteSize",
        "durationMs",
        "frameCount",
    }
    assert asset["properties"]["byteSize"]["type"] == "string"  # int64, as proto3 JSON writes it
    assert schemas["leo.generation.v1.Kind"]["enum"] == ["KIND_UNSPECIFIED", "KIND_IMAGE", "KIND_VIDEO"]


def test_a_message_in_both_a_request_and_a_response_is_refused(tmp_path):
    """Requests and responses read enums and nulls differently: one schema cannot say both."""
    sample = "message CreateGenerationRequest {\n  // A sample.\n  Image sample = 30;\n"
    with pytest.raises(ValueError, match="Image is used in both"):
        spec_of_edited_protos(tmp_path, {"message CreateGenerationRequest {\n": sample})
