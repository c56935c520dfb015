"""Webhooks on the whole flow in process: a real local receiver gets the
signed final state (completed or cancelled); a rotated secret signs the next
ones; retries, 410, and the URL rules at create time. That a webhook's body
is the JSON API's generation: tests/e2e/test_through_envoy.py."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from leo.generation.v1 import generation_pb2
from tests import rows
from tests.inprocess import Client, api_server, channel_to, flow, new_key, until
from tests.mesh_fixtures import migrated_database
from tests.webhook_receiver import Receiver, verified

WEBHOOKS = {"allow_private_urls": True, "backoff_base_s": 0.1, "backoff_cap_s": 0.3, "poll_interval_s": 0.1}
# Long enough for a cancel to land while PENDING.
AI = {"mock_ai_min_delay_s": 0.5, "mock_ai_max_delay_s": 0.8}


@pytest.fixture(scope="module")
async def mesh(postgres):
    with migrated_database(postgres) as database_url:
        async with flow(database_url, ai=AI, webhooks={**WEBHOOKS, "max_attempts": 4}) as running:
            yield running


@pytest.fixture
async def hooked(mesh) -> tuple[Client, str]:
    """A client whose owner has a webhook secret, and the secret."""
    client = await mesh.client()
    return client, await client.rotate_webhook_secret()


async def final_delivery(database_url: str, generation_id: str) -> rows.Delivery | None:
    delivery = await asyncio.to_thread(rows.delivery, database_url, generation_id)
    return delivery if delivery and delivery.status != "PENDING" else None


async def test_the_final_state_is_delivered_signed(hooked):
    client, secret = hooked
    assert secret.startswith("whsec_")
    with Receiver() as receiver:
        created = await client.create(prompt="hook me", webhook_url=receiver.url())
        assert created.webhook_url == receiver.url()
        (request,) = await until(lambda: receiver.requests, "the webhook")
    assert verified(secret, request)
    event = json.loads(request.body)
    assert event["type"] == "generation.completed"
    assert event["data"]["generationId"] == created.generation_id and event["data"]["status"] == "STATUS_COMPLETE"
    assert request.headers["content-type"] == "application/json"


async def test_rotation_changes_the_signing_secret(hooked):
    client, old = hooked
    new = await client.rotate_webhook_secret()
    assert new != old
    with Receiver() as receiver:
        await client.create(prompt="after rotation", webhook_url=receiver.url())
        (request,) = await until(lambda: receiver.requests, "the webhook")
    assert verified(new, request) and not verified(old, request)


async def test_a_receiver_failing_twice_gets_it_on_the_third_attempt(mesh, hooked):
    client, secret = hooked
    with Receiver({"/flaky": [500, 503]}) as receiver:
        created = await client.create(prompt="flaky", webhook_url=receiver.url("/flaky"))
        delivery = await until(
            lambda: final_delivery(mesh.database_url, created.generation_id),
            "the delivery to end",
        )
    assert (delivery.status, delivery.attempts, delivery.status_codes) == ("DELIVERED", 3, (500, 503, 200))
    assert len(receiver.requests) == 3
    assert len({r.body for r in receiver.requests}) == 1  # the same bytes every time
    assert all(verified(secret, r) for r in receiver.requests)


async def test_410_stops_retries(mesh, hooked):
    client, _ = hooked
    with Receiver(always=410) as receiver:
        created = await client.create(prompt="gone", webhook_url=receiver.url())
        delivery = await until(
            lambda: final_delivery(mesh.database_url, created.generation_id),
            "the delivery to end",
        )
        # Final at once: no attempt is due, and only PENDING deliveries are ever sent.
        assert (delivery.status, delivery.attempts, delivery.status_codes) == ("FAILED", 1, (410,))
        assert delivery.next_attempt_at is None
        assert len(receiver.requests) == 1


async def test_a_cancelled_generation_is_delivered_too(hooked):
    client, secret = hooked
    with Receiver() as receiver:
        created = await client.create(prompt="never mind", webhook_url=receiver.url())
        cancelled = await client.cancel(created.generation_id)
        assert cancelled.status == generation_pb2.STATUS_CANCELLED
        (request,) = await until(lambda: receiver.requests, "the webhook")
    event = json.loads(request.body)
    assert event["type"] == "generation.cancelled" and verified(secret, request)
    assert event["data"]["generationId"] == created.generation_id and event["data"]["status"] == "STATUS_CANCELLED"


async def test_a_webhook_needs_a_secret_first(mesh):
    client = await mesh.client()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.create(prompt="x", webhook_url="http://127.0.0.1:9/hook")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "webhookSecret:rotate" in caught.value.details()
    assert list((await client.list()).generations) == []


@pytest.mark.parametrize(
    "url, words",
    [
        ("ftp://example.com/hook", "http"),
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://169.254.169.254/latest", "link-local"),
    ],
)
async def test_bad_webhook_urls_are_rejected_at_create(database_url, url, words):
    """Private addresses not allowed (the default)."""
    async with api_server(database_url, background=False) as app, channel_to(app) as channel:
        client = Client(channel, await new_key(app, "strict"))
        await client.rotate_webhook_secret()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.create(prompt="x", webhook_url=url)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list((await client.list()).generations) == []
    (violation,) = field_violations(caught.value)
    assert violation.field == "webhook_url" and words in violation.description


def field_violations(error: grpc.aio.AioRpcError) -> list[error_details_pb2.BadRequest.FieldViolation]:
    status = rpc_status.from_call(error)
    bad_request = error_details_pb2.BadRequest()
    assert status is not None and status.details[0].Unpack(bad_request)
    return list(bad_request.field_violations)
