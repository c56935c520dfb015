"""The public path on one real mesh, through Envoy: the JSON API (create,
read, errors as JSON, and the gRPC codes of the same errors), watches as
server-sent events, generated files by signed links, a webhook whose body
is the JSON API's generation, and the SDK through Envoy's gRPC port
(including watches closed early, which once crashed the api_server
process). Each test is an owner of its own, and none stops a process.

What one service does is tested in process: tests/integration/
(test_generation_flow, test_watch, test_webhooks, test_sdk)."""

from __future__ import annotations

import io
import itertools
import json
import math
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from PIL import Image

from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from leo_client import Client, Model, RateLimited, Status
from leo_mesh.envoy_config import EnvoySettings
from leo_mesh.media.links import AssetLinks
from tests.clients import Api, error_info, json_client, new_owner, wait_for
from tests.rows import count_generations, generation_ids
from tests.sse import sse_events
from tests.webhook_receiver import Receiver, verified

# Quick generations (long enough for a cancel or a watch to land while
# PENDING), quick webhook retries, webhooks to this machine allowed, short
# videos, and Envoy's default rate limits.
ENV = {
    "MOCK_AI_MIN_DELAY_S": "0.3",
    "MOCK_AI_MAX_DELAY_S": "0.8",
    "MOCK_AI_VIDEO_FRAMES": "6",
    "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
    "WEBHOOK_POLL_INTERVAL_S": "0.1",
    "WEBHOOK_BACKOFF_BASE_S": "0.1",
    "WEBHOOK_BACKOFF_CAP_S": "0.3",
}
FRAMES = int(ENV["MOCK_AI_VIDEO_FRAMES"])


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(env=ENV)


# --- the JSON API ---


@pytest.fixture
def owner(mesh) -> tuple[str, str]:
    return new_owner(mesh, "flow")


@pytest.fixture
def api(mesh, owner):
    client = Api(mesh.api_address, owner[1])
    yield client
    client.close()


@pytest.fixture
def http(mesh, owner):
    with json_client(mesh, owner[1]) as client:
        yield client


def http_wait_final(http: httpx.Client, path: str) -> dict:
    def final():
        body = http.get(path).json()["generation"]
        return body["status"] in ("STATUS_COMPLETE", "STATUS_FAILED") and body

    return wait_for(final, timeout_s=30, what=f"{path} to finish")


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
def test_bad_input_is_400_with_field_details_and_writes_nothing(mesh, owner, http, body, field):
    response = http.post("/v1/generations", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == 3 and field in error["message"]
    detail, info = error["details"]
    assert info == error_info("FIELD_VIOLATION")
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert [v["field"] for v in detail["fieldViolations"]] == [field]
    assert count_generations(mesh.database_url, owner=owner[0]) == 0


def test_unknown_model_is_rejected_over_grpc_and_json(mesh, owner, api, http):
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
    assert count_generations(mesh.database_url, owner=owner[0]) == 0


def test_envoy_errors_are_json(http):
    unknown = http.get("/v2/nothing")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/json")
    assert unknown.json()["code"] == 5
    malformed = http.post("/v1/generations", content=b'{"prompt": ', headers={"content-type": "application/json"})
    assert malformed.status_code == 400
    assert malformed.json()["code"] == 3


# --- watches as server-sent events ---


@pytest.fixture
def sse_http(mesh):
    with json_client(mesh, new_owner(mesh, "watcher")[1], timeout_s=20) as client:
        yield client


def test_http_watch_is_server_sent_events(sse_http):
    generation_id = sse_http.post("/v1/generations", json={"prompt": "a bridge in fog"}).json()["generation"][
        "generationId"
    ]
    with sse_http.stream("GET", f"/v1/generations/{generation_id}:watch") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = sse_events(raw.split("\n")[:-1])
    statuses = [event["generation"]["status"] for event in events]
    assert statuses[0] == "STATUS_PENDING" and statuses[-1] == "STATUS_COMPLETE"
    assert set(statuses[:-1]) == {"STATUS_PENDING"}
    final = events[-1]["generation"]
    assert final["generationId"] == generation_id and len(final["images"]) == 2 and final["completeTime"].endswith("Z")
    assert raw.endswith("}\n\n")


def test_http_cancel_while_watching_ends_cancelled(sse_http):
    generation_id = sse_http.post("/v1/generations", json={"prompt": "never mind"}).json()["generation"]["generationId"]
    with sse_http.stream("GET", f"/v1/generations/{generation_id}:watch") as response:
        lines = response.iter_lines()
        first = sse_events([next(lines) for _ in range(4)])[0]  # retry, id, data, blank
        assert first["generation"]["status"] == "STATUS_PENDING"
        cancelled = sse_http.post(f"/v1/generations/{generation_id}:cancel", json={})
        assert cancelled.status_code == 200, cancelled.text
        rest = sse_events(list(lines))
    assert rest[-1]["generation"]["status"] == "STATUS_CANCELLED"
    assert {event["generation"]["status"] for event in rest[:-1]} <= {"STATUS_PENDING"}


def test_http_errors_before_the_first_event_are_json(mesh, sse_http):
    generation_id = sse_http.post("/v1/generations", json={"prompt": "private"}).json()["generation"]["generationId"]
    stranger = mesh.create_api_key("http stranger")
    response = sse_http.get(f"/v1/generations/{generation_id}:watch", headers={"authorization": f"Bearer {stranger}"})
    assert response.status_code == 404
    assert response.json() == {
        "code": 5,
        "message": f"generation {generation_id} not found",
        "details": [error_info("GENERATION_NOT_FOUND")],
    }
    assert sse_http.get(f"/v1/generations/{generation_id}:watch", headers={"authorization": ""}).status_code == 401


# --- a webhook ---


def test_the_final_state_is_delivered_signed_and_is_what_the_json_api_shows(mesh):
    with json_client(mesh, new_owner(mesh, "hooked")[1]) as http, Receiver() as receiver:
        rotated = http.post("/v1/webhookSecret:rotate", json={})
        assert rotated.status_code == 200, rotated.text
        secret = rotated.json()["secret"]
        assert secret.startswith("whsec_")
        created = http.post("/v1/generations", json={"prompt": "hook me", "webhookUrl": receiver.url()}).json()
        generation_id = created["generation"]["generationId"]
        assert created["generation"]["webhookUrl"] == receiver.url()
        (request,) = wait_for(lambda: receiver.requests, timeout_s=20, what="the webhook")
        shown = http.get(f"/v1/generations/{generation_id}").json()["generation"]
    assert verified(secret, request)
    event = json.loads(request.body)
    assert event["type"] == "generation.completed"
    assert event["data"]["generationId"] == generation_id and event["data"]["status"] == "STATUS_COMPLETE"
    assert event["data"] == shown
    assert request.headers["content-type"] == "application/json"


# --- the SDK through Envoy's gRPC port ---


def envoy(mesh) -> str:
    return f"127.0.0.1:{mesh.ports.envoy}"


def test_envoy_s_rate_limit_tells_the_sdk_when_to_retry(mesh, limits):
    """Through Envoy, a RESOURCE_EXHAUSTED of the rate limiter carries the
    RetryInfo that RateLimited.retry_after reads (one bucket refill)."""
    _, key = new_owner(mesh, "hasty")
    with Client(envoy(mesh), key) as client, pytest.raises(RateLimited) as caught:
        for _ in range(10 * limits.envoy_rate_limit_per_key_burst):
            list(client.list())
    assert (caught.value.reason, caught.value.retry_after) == ("RATE_LIMITED", 1.0)


def test_generate_watch_and_download_through_envoy(mesh, tmp_path):
    owner, key = new_owner(mesh, "sdk")
    updates = []
    with Client(envoy(mesh), key) as client:
        done = client.generate("a lighthouse at dusk", model=Model.SD, width=128, height=96, on_update=updates.append)
        assert done == client.get(done.id)
        paths = client.download(done, tmp_path)
        assert [g.id for g in client.list()] == [done.id]
    assert done.status is Status.COMPLETE and done.model is Model.SD
    assert updates[0].status is Status.PENDING and updates[-1] == done
    assert all(a != b for a, b in itertools.pairwise(updates))
    assert [p.name for p in paths] == [f"{done.id}-0.png", f"{done.id}-1.png"]
    assert all(Image.open(p).size == (128, 96) for p in paths)
    assert [p.stat().st_size for p in paths] == [a.byte_size for a in done.assets]
    assert generation_ids(mesh.database_url, owner) == [done.id]


def test_watches_closed_early_leave_the_api_server_serving(mesh):
    """Closing a watch before its end cancels the call. The api_server once
    crashed on that (reading the peer of a cancelled call), within a few."""
    with Client(envoy(mesh), new_owner(mesh, "sdk")[1]) as client:
        for i in range(30):
            stream = client.watch(client.create(f"watched briefly {i}").id)
            assert next(stream).status is Status.PENDING
            stream.close()
        assert all(api_server.running() for api_server in mesh.api_servers)
        assert client.generate("still served").status is Status.COMPLETE


# --- generated files by signed links (last: the rate-limit test empties buckets) ---


@pytest.fixture(scope="module")
def limits(mesh) -> EnvoySettings:
    """The rate limits the mesh's Envoy runs with."""
    return EnvoySettings.from_env(mesh.env)


@pytest.fixture(scope="module")
def media_owner(mesh):
    return json_client(mesh, mesh.create_api_key("media-owner"))


def create_and_finish(client: httpx.Client, **fields) -> dict:
    created = client.post("/v1/generations", json={"prompt": "a lighthouse at dusk", **fields})
    assert created.status_code == 200, created.text
    generation_id = created.json()["generation"]["generationId"]

    def complete():
        generation = client.get(f"/v1/generations/{generation_id}").json()["generation"]
        return generation["status"] == "STATUS_COMPLETE" and generation

    return wait_for(complete, timeout_s=30, interval_s=0.3, what=f"{generation_id} to complete")


@pytest.fixture(scope="module")
def images(media_owner) -> dict:
    return create_and_finish(media_owner, width=320, height=192)


def fetch(url: str, **headers: str) -> httpx.Response:
    """A GET as a browser's img tag sends it: no Authorization header unless given."""
    with httpx.Client(timeout=10) as browser:
        return browser.get(url, headers=headers)


def test_each_image_opens_by_its_signed_link_without_a_key(mesh, images):
    assert images["kind"] == "KIND_IMAGE" and images["progress"] == 100 and len(images["assets"]) == 2
    assert [i["url"] for i in images["images"]] == [a["url"] for a in images["assets"]]
    bodies = set()
    for asset in images["assets"]:
        assert asset["url"].startswith(mesh.envoy_url + f"/v1/generations/{images['generationId']}/assets/")
        answer = fetch(asset["url"])
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == asset["contentType"] == "image/png"
        assert answer.headers["etag"].startswith('"')
        cache, max_age = answer.headers["cache-control"].split(", max-age=")
        assert cache == "private" and 0 < int(max_age) <= 86400 + 8640  # the test meshes' links last a day
        assert len(answer.content) == int(asset["byteSize"])
        picture = Image.open(io.BytesIO(answer.content))
        assert (picture.format, picture.size) == ("PNG", (320, 192)) == ("PNG", (asset["width"], asset["height"]))
        picture.load()
        bodies.add(answer.content)
    assert len(bodies) == 2  # two different pictures


def test_the_owners_key_fetches_the_same_bytes_without_a_signature(mesh, media_owner, images):
    path = urlsplit(images["assets"][1]["url"]).path
    keyed = media_owner.get(path)
    assert keyed.status_code == 200 and keyed.content == fetch(images["assets"][1]["url"]).content
    assert keyed.headers["content-type"] == "image/png"
    # Neither a key nor a signature: 401.
    assert fetch(mesh.envoy_url + path).status_code == 401


def test_a_video_is_one_animation_with_the_promised_frames(media_owner):
    video = create_and_finish(media_owner, width=128, height=96, kind="KIND_VIDEO")
    assert video["kind"] == "KIND_VIDEO" and video["images"] == []
    (asset,) = video["assets"]
    assert (asset["contentType"], asset["frameCount"], asset["width"], asset["height"]) == (
        "image/webp",
        FRAMES,
        128,
        96,
    )
    assert asset["durationMs"] > 0
    answer = fetch(asset["url"])
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/webp"
    animation = Image.open(io.BytesIO(answer.content))
    assert (animation.format, animation.size, animation.n_frames) == ("WEBP", (128, 96), FRAMES)
    assert animation.is_animated


def signed_parts(url: str) -> tuple[str, str, str]:
    split = urlsplit(url)
    query = parse_qs(split.query)
    return split.path, query["expires"][0], query["signature"][0]


def assert_refused(answer: httpx.Response, status: int, reason: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    info = answer.json()["details"][-1]
    expected = error_info(reason)
    if "metadata" not in info:  # the errors Envoy makes itself have none
        del expected["metadata"]
    assert info == expected


def until_refused(send: Callable[[], httpx.Response], limits: EnvoySettings) -> list[httpx.Response]:
    """Answers to `send()` until the first 429; asserts the bucket let
    through no more than its burst and the tokens refilled meanwhile."""
    burst, rps = limits.envoy_rate_limit_per_key_burst, limits.envoy_rate_limit_per_key_rps
    started = time.monotonic()
    answers = [send()]
    while answers[-1].status_code != 429:
        assert len(answers) <= 10 * burst, "never rate limited"
        answers.append(send())
    refills = (math.floor(time.monotonic() - started) + 1) * rps
    assert len(answers) - 1 <= burst + refills
    return answers


def test_altered_links_are_403(mesh, images):
    path, expires, signature = signed_parts(images["assets"][0]["url"])
    other_path = path[: -len("0")] + "1"
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    base = mesh.envoy_url
    assert_refused(fetch(f"{base}{other_path}?expires={expires}&signature={signature}"), 403, "ASSET_LINK_INVALID")
    assert_refused(fetch(f"{base}{path}?expires={expires}&signature={flipped}"), 403, "ASSET_LINK_INVALID")
    later = int(expires) + 3600
    assert_refused(fetch(f"{base}{path}?expires={later}&signature={signature}"), 403, "ASSET_LINK_INVALID")


def test_an_expired_link_is_403(mesh, images):
    """A link signed with the mesh's key whose expiry has passed."""
    an_hour_ago = time.time() - 2 * 3600
    old = AssetLinks(
        mesh.env["MEDIA_URL_SIGNING_KEY"].encode(), base_url=mesh.envoy_url, ttl_s=60, clock=lambda: an_hour_ago
    )
    url = old.url(images["generationId"], 0, old.expiry())
    assert_refused(fetch(url), 403, "ASSET_LINK_EXPIRED")


def test_another_owners_asset_is_404_by_key_and_the_owner_gets_it_over_grpc(mesh, images):
    generation_id = images["generationId"]
    stranger_key = mesh.create_api_key("media-stranger")
    stranger = json_client(mesh, stranger_key)
    assert_refused(stranger.get(f"/v1/generations/{generation_id}/assets/0"), 404, "GENERATION_NOT_FOUND")
    assert_refused(stranger.get(f"/v1/generations/{uuid.uuid4()}/assets/0"), 404, "GENERATION_NOT_FOUND")
    owner_key = mesh.create_api_key("media-owner")
    request = generation_pb2.GetGenerationAssetRequest(generation_id=generation_id, index=0)
    with grpc.insecure_channel(f"127.0.0.1:{mesh.ports.envoy}") as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        chunks = list(stub.GetGenerationAsset(request, metadata=[("authorization", f"Bearer {owner_key}")], timeout=10))
        assert chunks[0].content_type == "image/png"
        assert b"".join(chunk.data for chunk in chunks) == fetch(images["assets"][0]["url"]).content
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.GetGenerationAsset(request, metadata=[("authorization", f"Bearer {stranger_key}")], timeout=10))
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    # The owner's generation has two images: there is no third.
    third = json_client(mesh, owner_key).get(f"/v1/generations/{generation_id}/assets/2")
    assert_refused(third, 404, "ASSET_NOT_FOUND")


def test_the_sse_stream_shows_progress_up_to_100(media_owner):
    created = media_owner.post("/v1/generations", json={"prompt": "a kite", "width": 64, "height": 64})
    generation_id = created.json()["generation"]["generationId"]
    events = []
    with media_owner.stream("GET", f"/v1/generations/{generation_id}:watch", timeout=30) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :])["generation"])
    percents = [event["progress"] for event in events if "progress" in event]
    assert events[-1]["status"] == "STATUS_COMPLETE" and percents[-1] == 100
    assert percents == sorted(percents) and any(0 < p < 100 for p in percents)


def test_a_signed_link_has_a_rate_limit_bucket_of_its_own(mesh, images, limits):
    """Requests without a key share the anonymous bucket; a signed link is
    counted in its own, so others' unauthenticated traffic cannot block it."""
    first, second = (asset["url"] for asset in images["assets"])
    path = urlsplit(first).path
    with httpx.Client(timeout=10) as browser:  # one connection: faster than the buckets refill
        anonymous = until_refused(lambda: browser.get(mesh.envoy_url + path), limits)
        assert {r.status_code for r in anonymous} == {401, 429}
        assert browser.get(first).status_code == 200
        by_link = until_refused(lambda: browser.get(first), limits)
        assert {r.status_code for r in by_link} == {200, 429}
        assert_refused(by_link[-1], 429, "RATE_LIMITED")
        assert browser.get(second).status_code == 200
        # The mesh is shared: leave the anonymous bucket holding a token again.
        wait_for(lambda: browser.get(mesh.envoy_url + path).status_code == 401, what="the anonymous bucket to refill")


def spellings(signature: str, count: int) -> list[str]:
    """`count` query spellings of one signature, each with another character
    percent-encoded (upper or lower hex): all the same value once decoded."""
    forms = []
    for i in range(count):
        at = i % len(signature)
        escape = f"%{ord(signature[at]):02X}" if i % 2 else f"%{ord(signature[at]):02x}"
        forms.append(signature[:at] + escape + signature[at + 1 :])
    return forms


def test_a_link_spelled_many_ways_is_one_bucket(mesh, media_owner, limits):
    """The bucket is the signature the api_server checks, decoded as the
    transcoder decodes it: re-spelling it gets no fresh bucket."""
    path, expires, signature = signed_parts(create_and_finish(media_owner, width=64, height=64)["assets"][0]["url"])
    forms = spellings(signature, 10 * limits.envoy_rate_limit_per_key_burst + 1)
    urls = iter(f"{mesh.envoy_url}{path}?expires={expires}&signature={form}" for form in forms)
    with httpx.Client(timeout=10) as browser:
        answers = until_refused(lambda: browser.get(next(urls)), limits)
    assert {r.status_code for r in answers} == {200, 429}


@pytest.mark.parametrize(
    "query",
    [
        "expires={expires}&signature={decoy}&signature={signature}",
        "expires={expires}&signature={signature}&sig%6Eature={decoy}",
        "expires={expires}&expires={expires}&signature={signature}",
        "expires={expires}&signature=&signature={signature}",
    ],
)
def test_a_link_with_a_field_given_twice_is_refused(mesh, images, query):
    """The edge named the bucket by the first signature and the api_server
    checked the last: a decoy in front got a fresh bucket for every request
    while the real link opened the file. A field given twice is a 400 now,
    as grpc-gateway answers it."""
    path, expires, signature = signed_parts(images["assets"][0]["url"])
    url = mesh.envoy_url + path + "?" + query.format(expires=expires, signature=signature, decoy=uuid.uuid4().hex)
    answer = fetch(url)
    assert_refused(answer, 400, "MALFORMED_REQUEST")
    assert answer.json()["message"] in ('too many values for field "signature"', 'too many values for field "expires"')


def test_the_access_log_holds_no_link_and_no_key(mesh, images):
    """Envoy logs each request's path without its query: a signed link's
    expiry and signature, or a key sent as a query parameter, stay out."""
    path, expires, signature = signed_parts(images["assets"][1]["url"])
    key = mesh.create_api_key("query-key")
    assert fetch(images["assets"][1]["url"]).status_code in (200, 429)  # its bucket may be spent by now
    with_token = f"{mesh.envoy_url}/v1/generations?access_token={key}"
    assert fetch(with_token).status_code in (401, 429)  # the anonymous bucket may be empty by now
    assert fetch(with_token, authorization=f"Bearer {key}").status_code == 200
    # Lines are written in order: once the last request's is there, all are.
    marker = f"/v1/generations/{uuid.uuid4()}"
    assert fetch(mesh.envoy_url + marker, authorization=f"Bearer {key}").status_code == 404
    log = wait_for(lambda: f" {marker} HTTP/1.1" in (text := mesh.envoy.log_text()) and text, what=marker)
    assert f" {path} HTTP/1.1" in log and " /v1/generations HTTP/1.1" in log
    for secret in (signature, expires, key, "access_token", "signature="):
        assert secret not in log


def test_an_expiry_anywhere_in_int64_is_checked_and_past_it_is_malformed(mesh, media_owner):
    """The spec bounds `expires` to int64: every value it allows reaches the
    link check (403 here), and the first one past it is refused unread."""
    fresh = create_and_finish(media_owner, width=64, height=64)  # its link's bucket is full
    path, _, signature = signed_parts(fresh["assets"][0]["url"])
    for expires in (str(2**63 - 1), str(-(2**63))):
        assert_refused(
            fetch(f"{mesh.envoy_url}{path}?expires={expires}&signature={signature}"), 403, "ASSET_LINK_INVALID"
        )
    assert_refused(fetch(f"{mesh.envoy_url}{path}?expires={2**63}&signature={signature}"), 400, "MALFORMED_REQUEST")
