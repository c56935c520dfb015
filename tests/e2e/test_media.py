"""Generated files through Envoy: opened by their signed links without a
key (as a browser's img tag does), refused when a link is altered or
expired, hidden from other owners, the same bytes over gRPC; progress on
the SSE stream. On the shared edge mesh: the owners here are this module's."""

from __future__ import annotations

import io
import json
import math
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import grpc
import httpx
import pytest
from PIL import Image

from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from leo_mesh.envoy_config import EnvoySettings
from leo_mesh.media.links import AssetLinks
from tests.clients import error_info, json_client, wait_for
from tests.mesh_fixtures import EDGE

FRAMES = int(EDGE["MOCK_AI_VIDEO_FRAMES"])


@pytest.fixture(scope="module")
def mesh(edge_mesh):
    return edge_mesh


@pytest.fixture(scope="module")
def limits(mesh) -> EnvoySettings:
    """The rate limits the mesh's Envoy runs with."""
    return EnvoySettings.from_env(mesh.env)


@pytest.fixture(scope="module")
def owner(mesh):
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
def images(owner) -> dict:
    return create_and_finish(owner, width=320, height=192)


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


def test_the_owners_key_fetches_the_same_bytes_without_a_signature(mesh, owner, images):
    path = urlsplit(images["assets"][1]["url"]).path
    keyed = owner.get(path)
    assert keyed.status_code == 200 and keyed.content == fetch(images["assets"][1]["url"]).content
    assert keyed.headers["content-type"] == "image/png"
    # Neither a key nor a signature: 401.
    assert fetch(mesh.envoy_url + path).status_code == 401


def test_a_video_is_one_animation_with_the_promised_frames(owner):
    video = create_and_finish(owner, width=128, height=96, kind="KIND_VIDEO")
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


def test_the_sse_stream_shows_progress_up_to_100(owner):
    created = owner.post("/v1/generations", json={"prompt": "a kite", "width": 64, "height": 64})
    generation_id = created.json()["generation"]["generationId"]
    events = []
    with owner.stream("GET", f"/v1/generations/{generation_id}:watch", timeout=30) as stream:
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
