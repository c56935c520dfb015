"""Webhook deliveries on a real database to a real local HTTP receiver:
signed exact bytes, retries recorded, 410 and max attempts, replicas."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from types import SimpleNamespace

import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from api_server.settings import WebhookSettings
from api_server.webhook_sender import WebhookSender
from leo_mesh.db import webhooks
from leo_mesh.db.models import DeliveryStatus
from leo_mesh.db.pool import Database
from leo_mesh.db.rows import COLUMNS, generation_rows
from leo_mesh.db.webhooks import WebhookStore
from leo_mesh.rules import NO_SECRET_ERROR
from leo_mesh.rules import Status as GenerationStatus
from tests.inprocess import signed_webhook_body as webhook_body
from tests.webhook_receiver import Receiver, verified

OWNER = "owner-1"
QUICK = {"backoff_base_s": 0.02, "backoff_cap_s": 0.05, "timeout_s": 2, "poll_interval_s": 0.05}


@pytest.fixture
def store(db) -> WebhookStore:
    return WebhookStore(db)


@pytest.fixture
def sessions(db) -> Database:
    return db


async def finished_generation(db, url: str | None, *, status=GenerationStatus.COMPLETE, owner=OWNER) -> uuid.UUID:
    """Insert a generation in its final state and queue its webhook in the
    same transaction, as the code that finishes generations does."""
    complete = status is GenerationStatus.COMPLETE
    async with db.transaction() as conn, conn.cursor(row_factory=generation_rows) as cursor:
        await cursor.execute(
            'INSERT INTO generations (id, "generationId", prompt, status, images, "failureReason", attempts, owner,'
            ' "webhookUrl", phase, "updatedAt", "completedAt")'
            " VALUES (%s, %s, %s, %s::generation_status, %s, %s, 1, %s, %s, NULL, now(), now())"
            f" RETURNING {COLUMNS}",
            (
                uuid.uuid4(),
                uuid.uuid4(),
                "a lighthouse at dusk",
                status.value,
                Jsonb([{"url": "https://cdn.example/1.png", "width": 1024, "height": 1024}] if complete else []),
                None if complete else "the AI backend rejected it",
                owner,
                url,
            ),
        )
        row = await cursor.fetchone()
        await webhooks.enqueue(conn, [(row, webhook_body(row))])
        return row.generation_id


async def delivery_of(db, generation_id: uuid.UUID) -> SimpleNamespace | None:
    async with db.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(
            'SELECT id, status::text, attempts, payload, "lastError" AS last_error, "deliveredAt" AS delivered_at,'
            ' "nextAttemptAt" AS next_attempt_at FROM webhook_deliveries WHERE "generationId" = %s',
            (generation_id,),
        )
        found = await cursor.fetchone()
    if found is None:
        return None
    return SimpleNamespace(**{**found, "status": DeliveryStatus(found["status"])})


async def attempts_of(db, delivery_id: uuid.UUID) -> list[SimpleNamespace]:
    async with db.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(
            'SELECT attempt, "statusCode" AS status_code, error, ms FROM webhook_attempts'
            ' WHERE "deliveryId" = %s ORDER BY attempt',
            (delivery_id,),
        )
        return [SimpleNamespace(**found) for found in await cursor.fetchall()]


async def run_until_final(store, sessions, generation_ids, *, wait_s: float = 20, **settings):
    """Run a sender until every delivery is DELIVERED or FAILED; return them."""
    config = WebhookSettings(**{"allow_private_urls": True, **QUICK, **settings})
    sender = WebhookSender(store, config)
    task = asyncio.create_task(sender.run())
    try:
        deadline = time.monotonic() + wait_s
        while True:
            deliveries = [await delivery_of(sessions, g) for g in generation_ids]
            if all(d.status is not DeliveryStatus.PENDING for d in deliveries):
                return deliveries
            assert time.monotonic() < deadline, "deliveries did not finish"
            await asyncio.sleep(0.05)
    finally:
        sender.stop()
        await task
        await sender.close()


async def test_delivers_stored_bytes_signed(store, sessions):
    secret = await store.rotate_secret(OWNER)
    assert await store.has_secret(OWNER) and not await store.has_secret("someone-else")
    with Receiver() as receiver:
        generation_id = await finished_generation(sessions, receiver.url())
        queued = await delivery_of(sessions, generation_id)
        [delivery] = await run_until_final(store, sessions, [generation_id])

    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts == 1
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None
    [request] = receiver.requests
    assert request.body == queued.payload.encode()
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == str(delivery.id)
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 30
    assert verified(secret, request)

    event = json.loads(request.body)
    assert list(event) == ["type", "timestamp", "data"]
    assert event["type"] == "generation.completed"
    assert event["timestamp"].endswith("Z")
    assert event["data"]["generationId"] == str(generation_id)
    assert event["data"]["status"] == "STATUS_COMPLETE"
    assert event["data"]["completeTime"] == event["timestamp"]
    assert b" " not in request.body.replace(b"a lighthouse at dusk", b"")  # compact

    [attempt] = await attempts_of(sessions, delivery.id)
    assert (attempt.attempt, attempt.status_code, attempt.error) == (1, 200, None)


async def test_enqueue_is_idempotent_and_needs_a_url(store, sessions):
    await store.rotate_secret(OWNER)
    generation_id = await finished_generation(sessions, "http://127.0.0.1:9/hook", status=GenerationStatus.FAILED)
    async with sessions.transaction() as conn, conn.cursor(row_factory=generation_rows) as cursor:
        await cursor.execute(f'SELECT {COLUMNS} FROM generations WHERE "generationId" = %s', (generation_id,))
        row = await cursor.fetchone()
        await webhooks.enqueue(conn, [(row, json.dumps({"changed": True}))])
    delivery = await delivery_of(sessions, generation_id)
    assert json.loads(delivery.payload)["type"] == "generation.failed"
    assert "changed" not in json.loads(delivery.payload)["data"]

    no_url = await finished_generation(sessions, None)
    async with sessions.connection() as conn:
        assert await (await conn.execute("SELECT count(*) FROM webhook_deliveries")).fetchone() == (1,)
    assert await delivery_of(sessions, no_url) is None


async def test_500_twice_then_delivered_on_third_attempt(store, sessions):
    secret = await store.rotate_secret(OWNER)
    with Receiver({"/hook": [500, 500]}) as receiver:
        generation_id = await finished_generation(sessions, receiver.url())
        [delivery] = await run_until_final(store, sessions, [generation_id])

    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts == 3
    assert len(receiver.requests) == 3
    assert len({r.body for r in receiver.requests}) == 1
    assert {r.headers["webhook-id"] for r in receiver.requests} == {str(delivery.id)}
    for request in receiver.requests:
        assert verified(secret, request)
    attempts = await attempts_of(sessions, delivery.id)
    assert [(a.attempt, a.status_code, a.error) for a in attempts] == [
        (1, 500, "HTTP 500"),
        (2, 500, "HTTP 500"),
        (3, 200, None),
    ]
    assert delivery.last_error is None


async def test_410_stops_retries(store, sessions):
    await store.rotate_secret(OWNER)
    with Receiver({"/hook": [410]}) as receiver:
        generation_id = await finished_generation(sessions, receiver.url())
        [delivery] = await run_until_final(store, sessions, [generation_id])
        await asyncio.sleep(0.3)  # a few more polls: nothing more is sent

    assert delivery.status is DeliveryStatus.FAILED and delivery.attempts == 1
    assert delivery.last_error == "HTTP 410" and delivery.next_attempt_at is None
    assert len(receiver.requests) == 1
    assert [a.status_code for a in await attempts_of(sessions, delivery.id)] == [410]


async def test_never_2xx_fails_after_max_attempts(store, sessions):
    await store.rotate_secret(OWNER)
    with Receiver(always=503) as receiver:
        generation_id = await finished_generation(sessions, receiver.url())
        [delivery] = await run_until_final(store, sessions, [generation_id], max_attempts=4)

    assert delivery.status is DeliveryStatus.FAILED and delivery.attempts == 4
    assert delivery.last_error == "HTTP 503"
    assert len(receiver.requests) == 4
    assert [a.status_code for a in await attempts_of(sessions, delivery.id)] == [503] * 4


async def test_timeout_is_retried(store, sessions):
    await store.rotate_secret(OWNER)
    with Receiver(delay_s=1) as receiver:
        generation_id = await finished_generation(sessions, receiver.url())
        [delivery] = await run_until_final(store, sessions, [generation_id], max_attempts=2, timeout_s=0.2)

    assert delivery.status is DeliveryStatus.FAILED and delivery.attempts == 2
    attempts = await attempts_of(sessions, delivery.id)
    assert [(a.status_code, a.error) for a in attempts] == [(None, "timed out after 0.2 s")] * 2
    assert all(150 <= a.ms < 1000 for a in attempts)


async def test_private_url_refused_at_send_time(store, sessions):
    await store.rotate_secret(OWNER)
    with Receiver() as receiver:
        generation_id = await finished_generation(sessions, receiver.url())
        [delivery] = await run_until_final(store, sessions, [generation_id], max_attempts=1, allow_private_urls=False)
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.last_error.startswith("refused: ") and "loopback" in delivery.last_error
    assert receiver.requests == []


async def test_owner_without_secret_fails(store, sessions):
    with Receiver() as receiver:
        generation_id = await finished_generation(sessions, receiver.url())
        [delivery] = await run_until_final(store, sessions, [generation_id])
    assert delivery.status is DeliveryStatus.FAILED and delivery.attempts == 0
    assert delivery.last_error == NO_SECRET_ERROR
    assert receiver.requests == []


class CountingStore(WebhookStore):
    claimed = 0

    async def claim_due(self, **limits):
        claimed = await super().claim_due(**limits)
        self.claimed += len(claimed)
        return claimed


async def test_two_senders_deliver_each_exactly_once(sessions, database_url):
    """More deliveries than one batch, so both senders get a share."""
    store = CountingStore(sessions)
    await store.rotate_secret(OWNER)
    # The second sender has its own pool, as another replica would.
    other_db = Database(database_url, name="other replica", max_size=5)
    await other_db.open()
    other_store = CountingStore(other_db)
    with Receiver() as receiver:
        generation_ids = [await finished_generation(sessions, receiver.url(f"/hook/{i}")) for i in range(60)]
        config = WebhookSettings(allow_private_urls=True, **QUICK)
        senders = [WebhookSender(store, config), WebhookSender(other_store, config)]
        tasks = [asyncio.create_task(sender.run()) for sender in senders]
        try:
            deadline = time.monotonic() + 20
            while len(receiver.requests) < len(generation_ids):
                assert time.monotonic() < deadline, "not every webhook arrived"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # a few more polls: no duplicates arrive
        finally:
            for sender in senders:
                sender.stop()
            await asyncio.gather(*tasks)
            for sender in senders:
                await sender.close()
            await other_db.close()

    paths = sorted(r.path for r in receiver.requests)
    assert paths == sorted(f"/hook/{i}" for i in range(60))
    for generation_id in generation_ids:
        delivery = await delivery_of(sessions, generation_id)
        assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts == 1
    assert store.claimed > 0 and other_store.claimed > 0
    assert store.claimed + other_store.claimed == 60
