"""The public JSON API through Envoy on the real mesh: create → PENDING at
once → COMPLETE with signed links, errors as JSON, and the gRPC codes of the
same errors. The flow itself over gRPC, in process:
tests/integration/test_generation_flow.py."""

from __future__ import annotations

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.clients import Api, error_info, json_client, new_owner, wait_for
from tests.rows import count_generations


@pytest.fixture
def owner(edge_mesh) -> tuple[str, str]:
    return new_owner(edge_mesh, "flow")


@pytest.fixture
def api(edge_mesh, owner):
    client = Api(edge_mesh.api_address, owner[1])
    yield client
    client.close()


@pytest.fixture
def http(edge_mesh, owner):
    with json_client(edge_mesh, owner[1]) as client:
        yield client


def http_wait_final(http: httpx.Client, path: str) -> dict:
    def final():
        body = http.get(path).json()["generation"]
        return body["status"] in ("STATUS_COMPLETE", "STATUS_FAILED") and body

    return wait_for(final, timeout_s=30, what=f"{path} to finish")


@pytest.mark.parametrize(
    "create_path, get_path", [("/v1/generations", "/v1/generations/"), ("/api/generation", "/api/generation/")]
)
def test_json_through_envoy(edge_mesh, http, create_path, get_path):
    response = http.post(create_path, json={"prompt": "a castle made of glass"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    created = response.json()["generation"]
    assert created["status"] == "STATUS_PENDING"
    assert created["model"] == "MODEL_SDXL" and created["width"] == 1024
    assert created["images"] == [] and created["failureReason"] == ""

    done = http_wait_final(http, get_path + created["generationId"])
    assert done["status"] == "STATUS_COMPLETE"
    assert done["attempts"] == 1
    links = [f"{edge_mesh.envoy_url}/v1/generations/{done['generationId']}/assets/{i}?" for i in range(2)]
    assert [image["url"][: len(link)] for image, link in zip(done["images"], links, strict=True)] == links
    assert done["completeTime"].endswith("Z")


def test_unknown_id_is_not_found(api, http):
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(grpc.RpcError) as caught:
        api.get(missing)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    for path in (f"/v1/generations/{missing}", f"/api/generation/{missing}"):
        response = http.get(path)
        assert response.status_code == 404
        assert response.json() == {
            "code": 5,
            "message": f"generation {missing} not found",
            "details": [error_info("GENERATION_NOT_FOUND")],
        }


def test_malformed_id_is_invalid_argument(api, http):
    with pytest.raises(grpc.RpcError) as caught:
        api.get("12345")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    body = http.get("/v1/generations/12345").json()
    assert body["code"] == 3
    (violation,) = body["details"][0]["fieldViolations"]
    assert (violation["field"], violation["description"]) == ("generation_id", "must be a UUID")


BAD_REQUESTS = [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": "x" * 1501}, "prompt"),
    ({"prompt": "ok", "width": 10}, "width"),
    ({"prompt": "ok", "height": 4096}, "height"),
    ({"prompt": "ok", "width": 1020}, "width"),
]


@pytest.mark.parametrize("body, field", BAD_REQUESTS)
def test_bad_input_is_400_with_field_details_and_writes_nothing(edge_mesh, owner, http, body, field):
    response = http.post("/v1/generations", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == 3 and field in error["message"]
    detail, info = error["details"]
    assert info == error_info("FIELD_VIOLATION")
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert [v["field"] for v in detail["fieldViolations"]] == [field]
    assert count_generations(edge_mesh.database_url, owner=owner[0]) == 0


def test_unknown_model_is_rejected_over_grpc_and_json(edge_mesh, owner, api, http):
    with pytest.raises(grpc.RpcError) as caught:
        api.create("ok", model=9)
    status = rpc_status.from_call(caught.value)
    bad_request = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == ["model"]
    # A name the enum does not have is refused by the transcoder itself.
    response = http.post("/v1/generations", json={"prompt": "ok", "model": "MODEL_DALLE"})
    assert response.status_code == 400
    assert response.json()["code"] == 3
    assert count_generations(edge_mesh.database_url, owner=owner[0]) == 0


def test_envoy_errors_are_json(http):
    unknown = http.get("/v2/nothing")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/json")
    assert unknown.json()["code"] == 5
    malformed = http.post("/v1/generations", content=b'{"prompt": ', headers={"content-type": "application/json"})
    assert malformed.status_code == 400
    assert malformed.json()["code"] == 3
