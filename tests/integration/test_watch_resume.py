"""Resuming a watch after an event id, and watching with a signed link: the
api_server in process with a stub AI, so a generation stays PENDING and
unchanged until the test changes it."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest

from api_server import watch_events
from leo.generation.v1 import generation_pb2
from tests.inprocess import Client, api_server, channel_to, new_key
from tests.integration.test_api_server import details, failure

FINAL_STATUS = generation_pb2.STATUS_CANCELLED


def watch_request(generation_id: str, **fields) -> generation_pb2.WatchGenerationRequest:
    return generation_pb2.WatchGenerationRequest(generation_id=generation_id, **fields)


async def messages(stream) -> list[generation_pb2.WatchGenerationResponse]:
    """The rest of a stream's messages, to its end."""
    found = []
    while (message := await stream.read()) is not grpc.aio.EOF:
        found.append(message)
    return found


async def subscribed(app, watchers: int) -> None:
    while len(app.watches) < watchers:
        await asyncio.sleep(0.01)


async def cancel(client: Client, generation_id: str) -> None:
    request = generation_pb2.CancelGenerationRequest(generation_id=generation_id)
    await client.stub.CancelGeneration(request, metadata=client.metadata)


@pytest.fixture
async def app(database_url):
    """Watches and their change feed run; the dispatcher does not, so a
    generation stays as created (no attempt is counted) until cancelled."""
    async with api_server(database_url, background=False) as app:
        app.grpc.background.start("change feed", app.feed.run())
        app.grpc.background.start("watch reads", app.watches.run())
        yield app


@pytest.fixture
async def client(app):
    async with channel_to(app) as channel:
        yield Client(channel, await new_key(app))


async def test_every_message_names_its_state(client):
    generation = await client.create()
    await cancel(client, generation.generation_id)
    [message] = await messages(
        client.stub.WatchGeneration(watch_request(generation.generation_id), metadata=client.metadata)
    )
    assert message.generation.status == FINAL_STATUS
    assert message.event_id == watch_events.event_id(message.generation)


async def test_resumed_after_the_current_state_it_waits_for_the_next_one(app, client):
    generation = await client.create()
    request = watch_request(generation.generation_id)
    plain = client.stub.WatchGeneration(request, metadata=client.metadata)
    current = await plain.read()
    assert current.generation.status == generation_pb2.STATUS_PENDING
    resumed = client.stub.WatchGeneration(
        request, metadata=(*client.metadata, (watch_events.LAST_EVENT_ID_HEADER, current.event_id))
    )
    # It opens at once (its headers sent, so that a proxy's client sees the
    # stream open) though it has no state to send yet.
    assert await asyncio.wait_for(resumed.initial_metadata(), timeout=10) is not None
    # Once subscribed, the resumed watch has been through the current state (the topic has it).
    await asyncio.wait_for(subscribed(app, 2), timeout=10)
    await cancel(client, generation.generation_id)
    got = await messages(resumed)
    assert [m.generation.status for m in got] == [FINAL_STATUS]
    assert [m.generation.status for m in await messages(plain)] == [FINAL_STATUS]


async def test_resumed_after_an_earlier_state_it_gets_the_current_one(client):
    generation = await client.create()
    request = watch_request(generation.generation_id)
    pending = await client.stub.WatchGeneration(request, metadata=client.metadata).read()
    await cancel(client, generation.generation_id)
    metadata = (*client.metadata, (watch_events.LAST_EVENT_ID_HEADER, pending.event_id))
    got = await messages(client.stub.WatchGeneration(request, metadata=metadata))
    assert [m.generation.status for m in got] == [FINAL_STATUS]
    metadata = (*client.metadata, (watch_events.LAST_EVENT_ID_HEADER, "not-an-id-of-ours"))
    assert await messages(client.stub.WatchGeneration(request, metadata=metadata)) == got


async def test_resumed_after_the_final_state_it_ends_at_once_and_says_so(client):
    generation = await client.create()
    await cancel(client, generation.generation_id)
    request = watch_request(generation.generation_id)
    [final] = await messages(client.stub.WatchGeneration(request, metadata=client.metadata))
    plain = client.stub.WatchGeneration(request, metadata=client.metadata)
    await messages(plain)
    assert watch_events.ENDED_HEADER not in dict(await plain.initial_metadata())
    metadata = (*client.metadata, (watch_events.LAST_EVENT_ID_HEADER, final.event_id))
    resumed = client.stub.WatchGeneration(request, metadata=metadata)
    assert await messages(resumed) == []
    assert dict(await resumed.initial_metadata())[watch_events.ENDED_HEADER] == "true"
    assert await resumed.code() is grpc.StatusCode.OK


async def test_a_signed_watch_link_needs_no_key_and_opens_only_its_generation(app, client):
    generation = await client.create()
    other = await client.create(prompt="another")
    got = await client.stub.GetGeneration(
        generation_pb2.GetGenerationRequest(generation_id=generation.generation_id), metadata=client.metadata
    )
    query = parse_qs(urlsplit(got.watch_url).query)
    link = {"expires": int(query["expires"][0]), "signature": query["signature"][0]}
    assert got.watch_url_expire_time.seconds == link["expires"]
    assert urlsplit(got.watch_url).path == f"/v1/generations/{generation.generation_id}:watch"

    stream = client.stub.WatchGeneration(watch_request(generation.generation_id, **link))  # no key
    assert (await stream.read()).generation.generation_id == generation.generation_id
    await cancel(client, generation.generation_id)
    assert [m.generation.status for m in await messages(stream)] == [FINAL_STATUS]

    for request in (
        watch_request(other.generation_id, **link),
        watch_request(generation.generation_id, expires=link["expires"] + 1, signature=link["signature"]),
    ):
        refused = await failure(messages(client.stub.WatchGeneration(request)))
        assert refused.code() is grpc.StatusCode.PERMISSION_DENIED
        assert details(refused)[0] == "ASSET_LINK_INVALID"


async def test_a_create_hands_out_the_watch_link_too(client):
    request = generation_pb2.CreateGenerationRequest(prompt="a lighthouse")
    created = await client.stub.CreateGeneration(request, metadata=client.metadata)
    path = urlsplit(created.watch_url).path
    assert path == f"/v1/generations/{created.generation.generation_id}:watch"
    assert created.watch_url_expire_time.seconds > 0
