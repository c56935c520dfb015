"""Webhooks through the whole mesh: a real local receiver gets the signed
final state; retries, 410, and URL rules at create time."""

from __future__ import annotations

import json
import time

import grpc
import pytest

from tests.clients import api_for, json_client, wait_for
from tests.webhook_receiver import Receiver, verified

FAST = {
    # Long enough for a cancel to land while PENDING.
    "MOCK_AI_MIN_DELAY_S": "1",
    "MOCK_AI_MAX_DELAY_S": "1.5",
    "WEBHOOK_BACKOFF_BASE_S": "0.1",
    "WEBHOOK_BACKOFF_CAP_S": "0.3",
    "WEBHOOK_POLL_INTERVAL_S": "0.1",
    "WEBHOOK_MAX_ATTEMPTS": "4",
}


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(env={**FAST, "WEBHOOK_ALLOW_PRIVATE_URLS": "true"})


@pytest.fixture(scope="module")
def owner(mesh):
    """A JSON client whose owner has a webhook secret."""
    key = mesh.create_api_key("hooked")
    with json_client(mesh, key) as http:
        rotated = http.post("/v1/webhookSecret:rotate", json={})
        assert rotated.status_code == 200, rotated.text
        yield http, rotated.json()["secret"]


def test_final_state_is_delivered_signed(owner):
    http, secret = owner
    assert secret.startswith("whsec_")
    with Receiver() as receiver:
        created = http.post("/v1/generations", json={"prompt": "hook me", "webhookUrl": receiver.url()}).json()
        generation_id = created["generation"]["generationId"]
        assert created["generation"]["webhookUrl"] == receiver.url()
        (request,) = wait_for(lambda: receiver.requests, timeout_s=20, what="the webhook")
    assert verified(secret, request)
    event = json.loads(request.body)
    assert event["type"] == "generation.completed"
    assert event["data"]["generationId"] == generation_id and event["data"]["status"] == "STATUS_COMPLETE"
    assert event["data"] == http.get(f"/v1/generations/{generation_id}").json()["generation"]
    assert request.headers["content-type"] == "application/json"


def test_rotation_changes_the_signing_secret(owner):
    http, old = owner
    new = http.post("/v1/webhookSecret:rotate", json={}).json()["secret"]
    assert new != old
    with Receiver() as receiver:
        http.post("/v1/generations", json={"prompt": "after rotation", "webhookUrl": receiver.url()}).raise_for_status()
        (request,) = wait_for(lambda: receiver.requests, timeout_s=20, what="the webhook")
    assert verified(new, request) and not verified(old, request)


def test_receiver_failing_twice_gets_it_on_the_third_attempt(owner):
    http, _ = owner
    secret = http.post("/v1/webhookSecret:rotate", json={}).json()["secret"]
    with Receiver({"/flaky": [500, 503]}) as receiver:
        http.post("/v1/generations", json={"prompt": "flaky", "webhookUrl": receiver.url("/flaky")}).raise_for_status()
        wait_for(lambda: len(receiver.requests) >= 3, timeout_s=20, what="three attempts")
    assert len({r.body for r in receiver.requests}) == 1  # the same bytes every time
    assert all(verified(secret, r) for r in receiver.requests)


def test_410_stops_retries(owner):
    http, _ = owner
    with Receiver(always=410) as receiver:
        http.post("/v1/generations", json={"prompt": "gone", "webhookUrl": receiver.url()}).raise_for_status()
        wait_for(lambda: receiver.requests, timeout_s=20, what="the first attempt")
        time.sleep(1.5)  # several backoff periods
        assert len(receiver.requests) == 1


def test_a_cancelled_generation_is_delivered_too(owner):
    http, _ = owner
    secret = http.post("/v1/webhookSecret:rotate", json={}).json()["secret"]
    with Receiver() as receiver:
        created = http.post("/v1/generations", json={"prompt": "never mind", "webhookUrl": receiver.url()}).json()
        generation_id = created["generation"]["generationId"]
        cancelled = http.post(f"/v1/generations/{generation_id}:cancel", json={})
        assert cancelled.status_code == 200, cancelled.text
        (request,) = wait_for(lambda: receiver.requests, timeout_s=20, what="the webhook")
    assert json.loads(request.body)["type"] == "generation.cancelled" and verified(secret, request)


@pytest.mark.parametrize(
    "url, words",
    [
        ("ftp://example.com/hook", "http"),
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://169.254.169.254/latest", "link-local"),
    ],
)
def test_bad_webhook_urls_are_rejected_at_create(strict_mesh, url, words):
    mesh = strict_mesh
    key = mesh.create_api_key("strict")
    with json_client(mesh, key) as http:
        http.post("/v1/webhookSecret:rotate", json={}).raise_for_status()
        response = http.post("/v1/generations", json={"prompt": "x", "webhookUrl": url})
    assert response.status_code == 400, response.text
    (violation,) = response.json()["details"][0]["fieldViolations"]
    assert violation["field"] == "webhook_url" and words in violation["description"]


@pytest.fixture(scope="module")
def strict_mesh(make_mesh):
    """Private addresses not allowed (the default)."""
    return make_mesh(env=FAST)


def test_a_webhook_needs_a_secret_first(mesh):
    api = api_for(mesh, "no secret yet")
    with pytest.raises(grpc.RpcError) as caught:
        api.create("x", webhook_url="http://127.0.0.1:9/hook")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "webhookSecret:rotate" in caught.value.details()
    assert api.list().generations == []
