"""WatchGeneration as server-sent events through Envoy. Over gRPC (states,
ownership, a stalled peer, a lost LISTEN connection, a second replica), in
process: tests/integration/test_watch.py; 1,000 watchers on one process:
tests/e2e/test_load.py; a SIGTERM ending open watches:
tests/e2e/test_processes.py."""

from __future__ import annotations

import json

import pytest

from tests.clients import error_info, json_client, new_owner


@pytest.fixture
def http(edge_mesh):
    with json_client(edge_mesh, new_owner(edge_mesh, "watcher")[1], timeout_s=20) as client:
        yield client


def sse_events(lines) -> list[dict]:
    """The JSON of each `data:` event; every event is `data: {json}` and a blank line."""
    events, expect_blank = [], False
    for line in lines:
        if expect_blank:
            assert line == "", f"event not followed by a blank line: {line!r}"
            expect_blank = False
            continue
        assert line.startswith("data: "), line
        events.append(json.loads(line.removeprefix("data: ")))
        expect_blank = True
    return events


def test_http_watch_is_server_sent_events(http):
    generation_id = http.post("/v1/generations", json={"prompt": "a bridge in fog"}).json()["generation"][
        "generationId"
    ]
    with http.stream("GET", f"/v1/generations/{generation_id}:watch") as response:
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


def test_http_cancel_while_watching_ends_cancelled(http):
    generation_id = http.post("/v1/generations", json={"prompt": "never mind"}).json()["generation"]["generationId"]
    with http.stream("GET", f"/v1/generations/{generation_id}:watch") as response:
        lines = response.iter_lines()
        first = sse_events([next(lines), next(lines)])[0]
        assert first["generation"]["status"] == "STATUS_PENDING"
        cancelled = http.post(f"/v1/generations/{generation_id}:cancel", json={})
        assert cancelled.status_code == 200, cancelled.text
        rest = sse_events(list(lines))
    assert rest[-1]["generation"]["status"] == "STATUS_CANCELLED"
    assert {event["generation"]["status"] for event in rest[:-1]} <= {"STATUS_PENDING"}


def test_http_errors_before_the_first_event_are_json(edge_mesh, http):
    generation_id = http.post("/v1/generations", json={"prompt": "private"}).json()["generation"]["generationId"]
    stranger = edge_mesh.create_api_key("http stranger")
    response = http.get(f"/v1/generations/{generation_id}:watch", headers={"authorization": f"Bearer {stranger}"})
    assert response.status_code == 404
    assert response.json() == {
        "code": 5,
        "message": f"generation {generation_id} not found",
        "details": [error_info("GENERATION_NOT_FOUND")],
    }
    assert http.get(f"/v1/generations/{generation_id}:watch", headers={"authorization": ""}).status_code == 401
