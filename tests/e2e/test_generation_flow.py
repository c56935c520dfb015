"""End to end: create → PENDING at once → COMPLETE with images, over gRPC and
over JSON through Envoy, on real processes and a real database."""

from __future__ import annotations

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from leo.generation.v1 import generation_pb2
from tests.clients import FINAL, api_for, count_generations, error_info, json_client, wait_for

FAST = {"MOCK_AI_MIN_DELAY_S": "0.3", "MOCK_AI_MAX_DELAY_S": "0.8"}


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(env=FAST)


@pytest.fixture(scope="module")
def api(mesh):
    client = api_for(mesh)
    yield client
    client.close()


@pytest.fixture(scope="module")
def http(mesh):
    key = mesh.create_api_key("json client")
    with json_client(mesh, key) as client:
        yield client


def http_wait_final(http: httpx.Client, path: str) -> dict:
    def final():
        body = http.get(path).json()["generation"]
        return body["status"] in ("STATUS_COMPLETE", "STATUS_FAILED") and body

    return wait_for(final, timeout_s=30, what=f"{path} to finish")


def test_grpc_create_is_pending_at_once_then_complete(mesh, api):
    created = api.create("a red fox in snow")
    assert created.status == generation_pb2.STATUS_PENDING
    assert (created.prompt, created.model, created.width, created.height) == (
        "a red fox in snow",
        generation_pb2.MODEL_SDXL,
        1024,
        1024,
    )
    assert created.create_time.seconds > 0 and not created.images
    pending = api.get(created.generation_id)
    assert pending.status in (generation_pb2.STATUS_PENDING, generation_pb2.STATUS_COMPLETE)
    if pending.status == generation_pb2.STATUS_PENDING:
        assert not pending.images

    done = api.wait_final(created.generation_id)
    assert done.status == generation_pb2.STATUS_COMPLETE
    assert done.attempts == 1 and done.failure_reason == ""
    assert len(done.images) == 2
    for index, image in enumerate(done.images):
        # A signed link to the file, through Envoy.
        assert image.url.startswith(f"{mesh.envoy_url}/v1/generations/{created.generation_id}/assets/{index}?")
        assert image.url == done.assets[index].url and "signature=" in image.url
        assert (image.width, image.height) == (1024, 1024)
    assert done.complete_time.ToDatetime() >= done.create_time.ToDatetime()


def test_grpc_create_keeps_model_and_size(api):
    created = api.create("tiny", model=generation_pb2.MODEL_SD, width=512, height=256)
    done = api.wait_final(created.generation_id)
    assert (done.model, done.width, done.height) == (generation_pb2.MODEL_SD, 512, 256)
    assert {(i.width, i.height) for i in done.images} == {(512, 256)}


@pytest.mark.parametrize(
    "create_path, get_path", [("/v1/generations", "/v1/generations/"), ("/api/generation", "/api/generation/")]
)
def test_json_through_envoy(mesh, http, create_path, get_path):
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
    links = [f"{mesh.envoy_url}/v1/generations/{done['generationId']}/assets/{i}?" for i in range(2)]
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
def test_bad_input_is_400_with_field_details_and_writes_nothing(http, mesh, body, field):
    before = count_generations(mesh.database_url)
    response = http.post("/v1/generations", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == 3 and field in error["message"]
    detail, info = error["details"]
    assert info == error_info("FIELD_VIOLATION")
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert [v["field"] for v in detail["fieldViolations"]] == [field]
    assert count_generations(mesh.database_url) == before


def test_unknown_model_is_rejected_over_grpc_and_json(api, http, mesh):
    before = count_generations(mesh.database_url)
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
    assert count_generations(mesh.database_url) == before


def test_envoy_errors_are_json(http):
    unknown = http.get("/v2/nothing")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/json")
    assert unknown.json()["code"] == 5
    malformed = http.post("/v1/generations", content=b'{"prompt": ', headers={"content-type": "application/json"})
    assert malformed.status_code == 400
    assert malformed.json()["code"] == 3


def test_many_generations_all_finish(api):
    ids = [api.create(f"prompt {i}", width=64, height=64).generation_id for i in range(30)]
    finished = [api.wait_final(generation_id) for generation_id in ids]
    assert all(g.status in FINAL for g in finished)
    assert all(g.status == generation_pb2.STATUS_COMPLETE for g in finished)
