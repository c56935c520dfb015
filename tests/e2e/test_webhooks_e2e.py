"""A webhook through the whole mesh, set up over JSON through Envoy: a real
local receiver gets the signed final state, and its body's generation is
the JSON API's. Retries, 410, rotation, cancels and the URL rules, in
process: tests/integration/test_webhooks.py."""

from __future__ import annotations

import json

from tests.clients import json_client, new_owner, wait_for
from tests.webhook_receiver import Receiver, verified


def test_the_final_state_is_delivered_signed_and_is_what_the_json_api_shows(edge_mesh):
    with json_client(edge_mesh, new_owner(edge_mesh, "hooked")[1]) as http, Receiver() as receiver:
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
