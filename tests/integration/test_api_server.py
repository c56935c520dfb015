"""The api_server in process with a stub AI: dispatch rounds driven by the
test, client input that must be a 4xx, overload, and revoked keys."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from api_server.app import ApiServer
from leo.generation.v1 import generation_pb2
from leo_mesh.db.keys import KeyStore
from leo_mesh.errors import BackendOverloaded
from tests import rows
from tests.inprocess import Client, FakeAi, api_server, channel_to, new_key, until


def details(error: grpc.aio.AioRpcError) -> tuple[str, list[str]]:
    """The ErrorInfo reason and the fields a BadRequest names."""
    status = rpc_status.from_call(error)
    assert status is not None
    reason, fields = "", []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return reason, fields


async def failure(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def count(app) -> int:
    async with app.db.connection() as conn:
        (n,) = await (await conn.execute("SELECT count(*) FROM generations")).fetchone()
        return n


# --- dispatch ---


@contextlib.asynccontextmanager
async def three_due(database_url: str, ai: FakeAi) -> AsyncIterator[tuple[ApiServer, list[str]]]:
    """An api_server whose dispatch rounds the test drives, and the ids of three generations due."""
    async with (
        api_server(database_url, ai=ai, background=False, dispatch_backoff_base_s=5) as app,
        channel_to(app) as channel,
    ):
        client = Client(channel, await new_key(app))
        yield app, [(await client.create(prompt=f"p{i}")).generation_id for i in range(3)]


async def after_dispatch(app: ApiServer) -> dict[str, tuple[str, int, str | None]]:
    """Each generation's status, attempts and last error."""
    async with app.db.connection() as conn:
        cursor = await conn.execute('SELECT "generationId"::text, status::text, attempts, "lastError" FROM generations')
        return {generation_id: tuple(rest) for generation_id, *rest in await cursor.fetchall()}


async def test_an_ai_call_that_fails_as_a_whole_leaves_its_generations_with_their_worker(database_url):
    """The worker may have taken them before the call broke: they are sent
    again to the same worker after the start lease, never to another."""
    ai = FakeAi()
    async with three_due(database_url, ai) as (app, created):
        ai.answer = RuntimeError("the stub broke")
        assert await app.dispatcher.round() is False  # the round itself ends normally
        assert await after_dispatch(app) == {generation_id: ("PENDING", 1, None) for generation_id in created}
        assert await asyncio.to_thread(rows.phases, database_url, created) == {"STARTING": 3}
        assert len(ai.requests) == 3 and ai.calls == 1
        await app.dispatcher.round()
        assert ai.calls == 1  # not before the start lease ends
        ai.answer = None
        for generation_id in created:
            await asyncio.to_thread(rows.make_due, database_url, generation_id)
        await app.dispatcher.round()
        assert ai.calls == 2 and [r.generation_id for r in ai.requests[3:]] == [
            r.generation_id for r in ai.requests[:3]
        ]
        assert await asyncio.to_thread(rows.phases, database_url, created) == {"RUNNING": 3}


async def test_a_round_goes_in_one_call_and_a_refused_job_fails_only_its_own_attempt(database_url):
    ai = FakeAi()
    async with three_due(database_url, ai) as (app, created):
        ai.refuse[created[1]] = BackendOverloaded()
        await app.dispatcher.round()
        assert ai.calls == 1 and sorted(job.generation_id for job in ai.requests) == sorted(created)
        assert await after_dispatch(app) == {
            created[0]: ("PENDING", 1, None),
            created[1]: ("PENDING", 1, "UNAVAILABLE: the AI backend is overloaded (simulated)"),
            created[2]: ("PENDING", 1, None),
        }


async def test_a_generation_cancelled_while_it_waits_for_its_retry_is_never_sent_again(database_url):
    """Both refused once, both due again: the round sends the other one
    again, never the cancelled one."""
    ai = FakeAi()
    async with (
        api_server(database_url, ai=ai, background=False, dispatch_backoff_base_s=5) as app,
        channel_to(app) as channel,
    ):
        client = Client(channel, await new_key(app))
        cancelled, other = [(await client.create(prompt=p)).generation_id for p in ("cancelled", "other")]
        ai.refuse = {cancelled: BackendOverloaded(), other: BackendOverloaded()}
        await app.dispatcher.round()
        assert sorted(job.generation_id for job in ai.requests) == sorted([cancelled, other])
        await client.cancel(cancelled)
        ai.refuse = {}
        for generation_id in (cancelled, other):
            await asyncio.to_thread(rows.make_due, database_url, generation_id)
        await app.dispatcher.round()
        assert [job.generation_id for job in ai.requests[2:]] == [other]
        statuses = await after_dispatch(app)
        assert statuses[cancelled][:2] == ("CANCELLED", 1) and statuses[other][:2] == ("PENDING", 2)


# --- client input that must be a 4xx, never a 500 ---

NUL_CREATES = [
    ({"webhook_url": "http://93.184.216.34/a\x00b"}, "webhook_url"),
    ({"webhook_url": "http://93.184.216.34/a\u0001b"}, "webhook_url"),
    ({"webhook_url": "http://93.184.216.34/a\tb"}, "webhook_url"),
    ({"prompt": "a\x00b"}, "prompt"),
    ({"request_id": "0b0e6f5c-8b0a-4c7e-9a3e-2f4f0f6a9d1\x00"}, "request_id"),
]


@pytest.mark.parametrize("fields, field", NUL_CREATES)
async def test_a_string_the_database_cannot_hold_is_a_field_error(database_url, fields, field):
    async with api_server(database_url, background=False) as app, channel_to(app) as channel:
        client = Client(channel, await new_key(app))
        await client.stub.RotateWebhookSecret(generation_pb2.RotateWebhookSecretRequest(), metadata=client.metadata)
        error = await failure(client.create(**fields))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert details(error) == ("FIELD_VIOLATION", [field])
        assert await count(app) == 0


async def test_ids_and_page_tokens_with_nul_are_field_errors(database_url):
    async with api_server(database_url, background=False) as app, channel_to(app) as channel:
        client = Client(channel, await new_key(app))
        bad_id = "00000000-0000-4000-8000-00000000000\x00"
        calls = {
            "generation_id": [
                client.stub.GetGeneration(
                    generation_pb2.GetGenerationRequest(generation_id=bad_id), metadata=client.metadata
                ),
                client.stub.CancelGeneration(
                    generation_pb2.CancelGenerationRequest(generation_id=bad_id), metadata=client.metadata
                ),
            ],
            "page_token": [
                client.stub.ListGenerations(
                    generation_pb2.ListGenerationsRequest(page_token="a\x00b"), metadata=client.metadata
                )
            ],
        }
        for field, field_calls in calls.items():
            for call in field_calls:
                error = await failure(call)
                assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and details(error) == (
                    "FIELD_VIOLATION",
                    [field],
                )


# --- overload ---


async def test_overload_is_server_busy_at_once_not_a_database_outage(database_url):
    async with (
        api_server(database_url, background=False, db_pool_size=1, db_max_waiting=1) as app,
        channel_to(app) as channel,
    ):
        client = Client(channel, await new_key(app))
        generation = await client.create()
        request = generation_pb2.GetGenerationRequest(generation_id=generation.generation_id)
        async with app.db.connection():  # the only connection is busy
            calls = [client.stub.GetGeneration(request, metadata=client.metadata, timeout=10) for _ in range(3)]
            done, waiting = await asyncio.wait([asyncio.ensure_future(c) for c in calls], timeout=2)
            busy = [call.exception() for call in done]
        assert busy and all(details(e) == ("SERVER_BUSY", []) for e in busy)
        assert all(e.code() is grpc.StatusCode.UNAVAILABLE for e in busy)
        for call in waiting:  # queued for the connection: answered once it is free
            assert (await call).generation.generation_id == generation.generation_id


# --- revoked keys ---


async def test_revoking_a_key_ends_its_watches_and_its_use_on_every_replica(database_url):
    async with api_server(database_url) as first, api_server(database_url) as second:
        key = await new_key(first)
        other_key = await new_key(first, "alice")
        async with channel_to(first) as one, channel_to(second) as two:
            clients = [Client(one, key), Client(two, key)]
            generation = await clients[0].create()
            for client in clients:  # the key is known (and cached) on both replicas
                await client.stub.ListGenerations(generation_pb2.ListGenerationsRequest(), metadata=client.metadata)
            request = generation_pb2.WatchGenerationRequest(generation_id=generation.generation_id)
            watches = [client.stub.WatchGeneration(request, metadata=client.metadata) for client in clients]
            survivor = Client(two, other_key).stub.WatchGeneration(request, metadata=Client(two, other_key).metadata)
            for stream in [*watches, survivor]:
                assert (await stream.read()).generation.status == generation_pb2.STATUS_PENDING

            assert await KeyStore(first.db).revoke(key[:12]) >= 1

            async def end_of(stream) -> None:
                """Reads on to the stream's end: states sent before the revocation came may arrive first."""
                while True:
                    message = await stream.read()
                    assert message.generation.status == generation_pb2.STATUS_PENDING

            for stream in watches:
                ended = await failure(asyncio.wait_for(end_of(stream), timeout=10))
                assert ended.code() is grpc.StatusCode.UNAUTHENTICATED and details(ended)[0] == "API_KEY_REVOKED"
            for client in clients:

                async def refused(client=client) -> bool:
                    try:
                        await client.stub.ListGenerations(
                            generation_pb2.ListGenerationsRequest(), metadata=client.metadata
                        )
                    except grpc.aio.AioRpcError as error:
                        return error.code() is grpc.StatusCode.UNAUTHENTICATED
                    return False

                assert await refused()
            assert survivor.done() is False  # another key's watch goes on
            survivor.cancel()


# --- a burst of watches ---


async def test_a_burst_of_watches_is_held_not_dropped(database_url):
    """gRPC's default backlog of calls not yet taken by the application is
    1,000; beyond it new calls were CANCELLED silently."""
    burst = 2_500
    async with api_server(database_url, background=False) as app:
        app.grpc.background.start("watch reads", app.watches.run())
        async with channel_to(app) as channel:
            client = Client(channel, await new_key(app))
            generation = await client.create()
            request = generation_pb2.WatchGenerationRequest(generation_id=generation.generation_id)
            streams = [client.stub.WatchGeneration(request, metadata=client.metadata) for _ in range(burst)]
            first = await asyncio.gather(*(stream.read() for stream in streams), return_exceptions=True)
            errors = [f for f in first if isinstance(f, BaseException)]
            assert errors == [] and len(app.watches) == burst
            for stream in streams:
                stream.cancel()
            # Each cancel reaches its server-side stream, which leaves: nothing
            # of the burst outlives the test (it would hold up the next one's loop).
            await until(lambda: len(app.watches) == 0, "every cancelled watch to leave", timeout_s=30)
