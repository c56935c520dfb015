"""The watch over HTTP as browsers expect server-sent events, through Envoy:
an id and a retry delay on each event, no caching, Last-Event-ID resuming
after an event and 204 once the final one was delivered, and a signed watch
link that needs no API key. A real EventSource drives the same stack in
tests/e2e/test_node_client.py."""

from __future__ import annotations

import httpx
import pytest

from tests.clients import error_info, json_client
from tests.sse import sse_events

FAST = {"MOCK_AI_MIN_DELAY_S": "0.3", "MOCK_AI_MAX_DELAY_S": "0.6"}


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(env=FAST)


@pytest.fixture(scope="module")
def http(mesh):
    with json_client(mesh, mesh.create_api_key("browser"), timeout_s=20) as client:
        yield client


def watch(client: httpx.Client, url: str, **headers: str) -> tuple[httpx.Response, list[dict]]:
    """One watch to its end: the response and its events."""
    with client.stream("GET", url, headers=headers) as response:
        text = response.read().decode()
    return response, sse_events(text.split("\n")[:-1]) if response.status_code == 200 else []


def create(http: httpx.Client) -> dict:
    created = http.post("/v1/generations", json={"prompt": "a kite at noon", "width": 64, "height": 64})
    assert created.status_code == 200, created.text
    return created.json()


def test_every_event_has_an_id_and_the_retry_delay_and_nothing_is_cached(http):
    generation_id = create(http)["generation"]["generationId"]
    response, events = watch(http, f"/v1/generations/{generation_id}:watch")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "\nretry: 2000\nid: " in "\n" + response.text  # sse_events checks each event's fields
    ids = [event["eventId"] for event in events]
    assert len(set(ids)) == len(ids) and events[-1]["generation"]["status"] == "STATUS_COMPLETE"


def test_last_event_id_resumes_after_it_and_after_the_final_event_it_is_204(http):
    generation_id = create(http)["generation"]["generationId"]
    path = f"/v1/generations/{generation_id}:watch"
    _, events = watch(http, path)
    first, final = events[0], events[-1]
    assert first["generation"]["status"] == "STATUS_PENDING"

    response, resumed = watch(http, path, **{"last-event-id": first["eventId"]})
    assert response.status_code == 200 and resumed == [final]

    ended, _ = watch(http, path, **{"last-event-id": final["eventId"]})
    assert ended.status_code == 204
    assert ended.content == b"" and "content-type" not in ended.headers
    assert not any(name.startswith(("grpc-", "leo-")) for name in ended.headers)


def test_a_signed_watch_link_needs_no_key_and_stays_out_of_the_logs(mesh, http):
    created = create(http)
    link = created["watchUrl"]
    generation_id = created["generation"]["generationId"]
    assert link.startswith(f"{mesh.envoy_url}/v1/generations/{generation_id}:watch?expires=")
    assert created["watchUrlExpireTime"].endswith("Z")
    with httpx.Client(timeout=20) as browser:  # no Authorization header
        response, events = watch(browser, link)
        assert response.status_code == 200 and events[-1]["generation"]["status"] == "STATUS_COMPLETE"
        ended, _ = watch(browser, link, **{"last-event-id": events[-1]["eventId"]})
        assert ended.status_code == 204

        tampered = browser.get(link[:-2] + ("AA" if not link.endswith("AA") else "BB"))
        assert tampered.status_code == 403
        assert tampered.json()["details"] == [error_info("ASSET_LINK_INVALID")]
        other = create(http)["generation"]["generationId"]
        assert browser.get(link.replace(generation_id, other)).status_code == 403
    signature = link.rsplit("signature=", 1)[1]
    assert signature not in mesh.envoy.log_text()


def test_the_get_hands_out_the_same_link(http):
    created = create(http)
    got = http.get(f"/v1/generations/{created['generation']['generationId']}").json()
    assert (got["watchUrl"], got["watchUrlExpireTime"]) == (created["watchUrl"], created["watchUrlExpireTime"])


def test_an_http_client_without_a_key_or_link_gets_401(mesh, http):
    generation_id = create(http)["generation"]["generationId"]
    with json_client(mesh) as anonymous:
        assert anonymous.get(f"/v1/generations/{generation_id}:watch").status_code == 401
