"""leo_client against a real api_server in process, with the real mock AI
and callback server: every method, typed errors, waiting (through a broken
watch too), a create whose answer is lost on the way, and the asyncio
client with 200 generations at once. The blocking client runs in a thread
(asyncio.to_thread) while the servers run in the test's event loop.

Through Envoy's gRPC port (and watches closed early, which once crashed the
api_server process): tests/e2e/test_through_envoy.py."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
import uuid

import grpc
import pytest
from PIL import Image

from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from leo_client import (
    AlreadyExists,
    AsyncClient,
    Client,
    FailedPrecondition,
    GenerationCancelled,
    GenerationFailed,
    InvalidArgument,
    Kind,
    Model,
    NotFound,
    RateLimited,
    Status,
    Unauthenticated,
    WaitTimeout,
)
from leo_client.channel import OPTIONS
from tests import rows
from tests.inprocess import api_server, callback_server, flow, media_settings, mock_ai, new_key, until
from tests.mesh_fixtures import migrated_database

FAST = {"mock_ai_min_delay_s": 0.2, "mock_ai_max_delay_s": 0.5}


@pytest.fixture(scope="module")
async def mesh(postgres):
    """Fast generations; room for 200 PENDING per owner; webhooks to this machine allowed."""
    with migrated_database(postgres) as database_url:
        async with flow(
            database_url, ai=FAST, max_pending_per_owner=300, webhooks={"allow_private_urls": True}
        ) as running:
            yield running


@pytest.fixture(scope="module")
async def slow_mesh(postgres):
    """Generations stay PENDING for the whole of a test; at most 2 PENDING per owner."""
    ai = {"mock_ai_min_delay_s": 120, "mock_ai_max_delay_s": 150}
    with migrated_database(postgres) as database_url:
        async with flow(database_url, ai=ai, max_pending_per_owner=2) as running:
            yield running


@pytest.fixture(scope="module")
async def failing_mesh(postgres):
    """Every generation ends FAILED."""
    with migrated_database(postgres) as database_url:
        async with flow(database_url, ai={**FAST, "mock_ai_generation_failure_rate": 1}) as running:
            yield running


async def owner_and_key(mesh) -> tuple[str, str]:
    owner = f"sdk-{uuid.uuid4().hex[:8]}"
    return owner, await mesh.key(owner)


async def generation_ids(mesh, owner: str) -> list[str]:
    return await asyncio.to_thread(rows.generation_ids, mesh.database_url, owner)


async def in_thread(mesh, body):
    """Run `body(client)` with a blocking client of a new owner, in a thread."""
    key = (await owner_and_key(mesh))[1]

    def run():
        with Client(mesh.address, key) as client:
            return body(client)

    return await asyncio.to_thread(run)


# --- the blocking client ----------------------------------------------------


async def test_the_default_client_reads_target_and_key_from_the_environment(mesh, monkeypatch):
    owner, key = await owner_and_key(mesh)
    monkeypatch.setenv("LEO_API_TARGET", mesh.address)
    monkeypatch.setenv("LEO_API_KEY", key)

    def run():
        with Client() as client:
            created = client.create("from the environment")
            return created, client.get(created.id)

    created, got = await asyncio.to_thread(run)
    assert got.prompt == "from the environment"
    assert await generation_ids(mesh, owner) == [created.id]


async def test_generate_waits_and_returns_the_complete_generation(mesh):
    updates = []

    def run(client):
        done = client.generate("a lighthouse at dusk", model=Model.SD, width=512, height=768, on_update=updates.append)
        return done, client.get(done.id)

    done, got = await in_thread(mesh, run)
    assert done == got
    assert done.status is Status.COMPLETE and done.done
    assert done.model is Model.SD and (done.width, done.height) == (512, 768)
    assert done.images and all(done.id in image.url and image.width == 512 for image in done.images)
    assert updates[0].status is Status.PENDING and updates[0].id == done.id
    assert updates[-1] == done
    assert all(a != b for a, b in itertools.pairwise(updates))


async def test_download_saves_each_file_streamed_with_its_extension(mesh, tmp_path):
    def run(client):
        done = client.generate("a lighthouse at dusk", width=128, height=96)
        paths = client.download(done, tmp_path / "images")
        one = client.download_asset(done.id, 1, tmp_path / "chosen.png")
        with pytest.raises(NotFound):
            client.download_asset(done.id, 2, tmp_path)
        return done, paths, one

    done, paths, one = await in_thread(mesh, run)
    assert [p.name for p in paths] == [f"{done.id}-0.png", f"{done.id}-1.png"]
    assert all(Image.open(p).size == (128, 96) for p in paths)
    assert [p.stat().st_size for p in paths] == [a.byte_size for a in done.assets]
    assert one == tmp_path / "chosen.png" and one.read_bytes() == paths[1].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chosen.png", "images"]  # nothing half written


async def test_the_asyncio_client_downloads_a_video(mesh, tmp_path):
    key = (await owner_and_key(mesh))[1]
    async with AsyncClient(mesh.address, key) as client:
        done = await client.generate("a whale", kind="video", width=64, height=64)
        (path,) = await client.download(done.id, tmp_path)
    assert done.kind is Kind.VIDEO and path.name == f"{done.id}-0.webp"
    animation = Image.open(path)
    assert animation.is_animated and animation.n_frames == done.assets[0].frame_count


async def test_create_answers_pending_and_wait_follows_it_to_the_end(mesh):
    def run(client):
        created = client.create("a red fox in snow", model="sdxl", width=1024, height=768)
        return created, client.get(created.id), client.wait(created.id)

    created, got, done = await in_thread(mesh, run)
    assert created.status is Status.PENDING and created.model is Model.SDXL and created.height == 768
    assert got.id == created.id
    assert done.status is Status.COMPLETE and done.id == created.id


async def test_generate_without_waiting_returns_the_pending_generation(mesh):
    def run(client):
        pending = client.generate("not waited for", wait=False)
        return pending, client.wait(pending.id)

    pending, done = await in_thread(mesh, run)
    assert pending.status is Status.PENDING
    assert done.status is Status.COMPLETE


async def test_watch_streams_states_until_the_final_one(mesh):
    def run(client):
        created = client.create("a kite over the dunes")
        return created, list(client.watch(created.id))

    created, states = await in_thread(mesh, run)
    assert states[0].id == created.id
    assert [s.status for s in states[:-1]] == [Status.PENDING] * (len(states) - 1)
    assert states[-1].status is Status.COMPLETE and states[-1].images


async def test_list_walks_every_page(mesh):
    def run(client):
        created = [client.create(f"page test {i}").id for i in range(5)]
        listed = [g.id for g in client.list(page_size=2)]
        first_three = [g.id for g in itertools.islice(client.list(page_size=2), 3)]
        for generation_id in created:
            client.wait(generation_id)
        complete = [g.id for g in client.list(status=Status.COMPLETE, page_size=2)]
        return created, listed, first_three, complete, list(client.list(status="failed"))

    created, listed, first_three, complete, failed = await in_thread(mesh, run)
    assert listed == created[::-1]
    assert first_three == created[::-1][:3]
    assert sorted(complete) == sorted(created)
    assert failed == []


async def test_a_field_error_is_invalid_argument_naming_the_field(mesh):
    owner, key = await owner_and_key(mesh)

    def run():
        with Client(mesh.address, key) as client:
            with pytest.raises(InvalidArgument) as width:
                client.create("a fox", width=1001)
            with pytest.raises(InvalidArgument) as prompt:
                client.create("   ")
        return width.value, prompt.value

    width, prompt = await asyncio.to_thread(run)
    assert [v.field for v in width.violations] == ["width"]
    assert "multiple of 8" in width.violations[0].description
    assert width.code is grpc.StatusCode.INVALID_ARGUMENT
    # The server's ErrorInfo, read whatever its reason.
    assert width.reason and width.domain == "generation.leo.example"
    assert [v.field for v in prompt.violations] == ["prompt"]
    assert await generation_ids(mesh, owner) == []


async def test_errors_come_back_typed(mesh):
    def run(client):
        with pytest.raises(NotFound):
            client.get(str(uuid.uuid4()))
        done = client.generate("finished already")
        with pytest.raises(FailedPrecondition, match="already COMPLETE"):
            client.cancel(done.id)
        request_id = str(uuid.uuid4())
        first = client.create("idempotent", request_id=request_id)
        assert client.create("idempotent", request_id=request_id).id == first.id
        with pytest.raises(AlreadyExists):
            client.create("other parameters", request_id=request_id)
        with Client(mesh.address, "leo_not_a_key") as stranger, pytest.raises(Unauthenticated):
            stranger.get(done.id)

    await in_thread(mesh, run)


async def test_webhooks_need_a_secret_and_then_are_recorded(mesh):
    def run(client):
        with pytest.raises(FailedPrecondition, match="secret"):
            client.create("hooked", webhook_url="http://127.0.0.1:9/hook")
        secret = client.rotate_webhook_secret()
        assert secret.startswith("whsec_") and client.rotate_webhook_secret() != secret
        return client.create("hooked", webhook_url="http://127.0.0.1:9/hook")

    hooked = await in_thread(mesh, run)
    assert hooked.webhook_url == "http://127.0.0.1:9/hook"


async def test_a_failed_generation_raises_with_its_reason(failing_mesh):
    def run(client):
        with pytest.raises(GenerationFailed) as caught:
            client.generate("doomed")
        stored = client.get(caught.value.generation.id)
        with pytest.raises(GenerationFailed):
            client.wait(stored.id)
        return caught.value, stored

    failed, stored = await in_thread(failing_mesh, run)
    assert stored.status is Status.FAILED and stored.failure_reason
    assert failed.reason == stored.failure_reason
    assert failed.generation.status is Status.FAILED


async def test_cancel_and_a_wait_that_ends_cancelled(slow_mesh):
    outcome: list[BaseException] = []

    def run(client):
        created = client.create("never finished")

        def wait() -> None:
            try:
                client.wait(created.id)
            except BaseException as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        cancelled = client.cancel(created.id)
        waiter.join(60)
        return created, cancelled

    created, cancelled = await in_thread(slow_mesh, run)
    assert cancelled.status is Status.CANCELLED
    assert len(outcome) == 1 and isinstance(outcome[0], GenerationCancelled)
    assert outcome[0].generation.id == created.id


async def test_waiting_gives_up_after_its_timeout_with_the_last_state(slow_mesh):
    def run(client):
        with pytest.raises(WaitTimeout) as caught:
            client.generate("too slow", timeout=1)
        return caught.value

    timed_out = await in_thread(slow_mesh, run)
    assert timed_out.generation.status is Status.PENDING


async def test_too_many_pending_is_rate_limited(slow_mesh):
    def run(client):
        client.create("one")
        client.create("two")
        with pytest.raises(RateLimited, match="at most 2"):
            client.create("three")

    await in_thread(slow_mesh, run)


# --- a create whose answer never arrives -------------------------------------

HEADERS_FRAME = 0x1


class AnswerCuttingProxy:
    """A TCP proxy to Envoy. Once armed, the next connection forwards the
    client's request but, when the answer starts (the first HTTP/2 HEADERS
    frame on a stream, sent after the server handled the call), resets the
    connection instead: the server did the work, the client never hears of it.
    Later connections pass everything through."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.target = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._armed = False
        self.connections = 0
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        self._armed = True

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            self.connections += 1
            cut, self._armed = self._armed, False
            threading.Thread(target=self._pipe, args=(downstream, upstream), daemon=True).start()
            answer = self._cut_answer if cut else self._pipe
            threading.Thread(target=answer, args=(upstream, downstream), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            sock.close()

    def _cut_answer(self, upstream: socket.socket, downstream: socket.socket) -> None:
        buffer = b""
        try:
            while data := upstream.recv(65536):
                buffer += data
                while len(buffer) >= 9:
                    length = int.from_bytes(buffer[:3], "big")
                    kind, stream = buffer[3], int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
                    if len(buffer) < 9 + length:
                        break
                    if kind == HEADERS_FRAME and stream:
                        self.cuts += 1
                        # shutdown, not only close: the other direction's thread is blocked reading it.
                        downstream.shutdown(socket.SHUT_RDWR)
                        return
                    downstream.sendall(buffer[: 9 + length])
                    buffer = buffer[9 + length :]
        except OSError:
            pass
        finally:
            downstream.close()
            upstream.close()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def proxy(mesh):
    proxy = AnswerCuttingProxy(mesh.api.port)
    yield proxy
    proxy.close()


async def test_a_create_whose_answer_is_lost_is_retried_and_makes_one_generation(mesh, proxy):
    owner, key = await owner_and_key(mesh)
    proxy.arm()

    def run():
        with Client(proxy.target, key) as client:
            return client.create("made exactly once")

    created = await asyncio.to_thread(run)
    assert proxy.cuts == 1 and proxy.connections == 2
    assert await generation_ids(mesh, owner) == [created.id]


async def test_without_a_request_id_the_same_fault_makes_two_generations(mesh, proxy):
    """The fault above really strikes after the server committed the create:
    a bare stub with the same retry policy but no request_id makes two."""
    owner, key = await owner_and_key(mesh)
    proxy.arm()

    def run():
        with grpc.insecure_channel(proxy.target, options=OPTIONS) as channel:
            stub = generation_pb2_grpc.GenerationServiceStub(channel)
            stub.CreateGeneration(
                generation_pb2.CreateGenerationRequest(prompt="made twice"),
                metadata=[("authorization", f"Bearer {key}")],
                timeout=30,
            )

    await asyncio.to_thread(run)
    assert proxy.cuts == 1
    assert len(await generation_ids(mesh, owner)) == 2


# --- a watch that breaks -------------------------------------------------------


async def test_a_broken_watch_is_watched_again(database_url):
    """The api_server goes away while a wait watches (its drain ends the
    stream UNAVAILABLE), the generation completes meanwhile, an api_server
    comes back on the same port: the wait watches again (within its
    reconnect bound) and gets the COMPLETE generation."""
    media = media_settings()
    ai = {"mock_ai_min_delay_s": 2, "mock_ai_max_delay_s": 3}
    async with (
        callback_server(database_url, media) as callback,
        mock_ai(f"127.0.0.1:{callback.port}", media, **ai),
    ):
        settings = {"real_workers": True, "media": media}
        created: list = []
        outcome: list[object] = []
        async with contextlib.AsyncExitStack() as first_api_server:
            api = await first_api_server.enter_async_context(api_server(database_url, **settings))
            port, key = api.port, await new_key(api, "patient")

            def wait() -> None:
                with Client(f"127.0.0.1:{port}", key, reconnect_timeout=300) as client:
                    created.append(client.create("outlives its api_server"))
                    outcome.append(_outcome(client.wait, created[0].id, timeout=120))

            waiter = asyncio.create_task(asyncio.to_thread(wait))
            generation_id = (await until(lambda: created, "the create"))[0].id
            await until(lambda: len(api.watches) >= 1, "the wait's watch")
            await until(
                lambda: asyncio.to_thread(rows.on_workers, database_url, [generation_id]), "the job on the worker"
            )
            assert (await asyncio.to_thread(rows.dispatch, database_url, generation_id)).status == "PENDING"
        # No api_server now: the AI and the callback server finish the generation.
        await until(
            lambda: asyncio.to_thread(lambda: rows.dispatch(database_url, generation_id).status == "COMPLETE"),
            "the generation to complete without an api_server",
            timeout_s=60,
        )
        assert not waiter.done()
        async with api_server(database_url, api_server_port=port, **settings):
            await asyncio.wait_for(waiter, timeout=120)
    assert len(outcome) == 1
    assert getattr(outcome[0], "status", outcome[0]) is Status.COMPLETE


def _outcome(call, *args, **kwargs) -> object:
    try:
        return call(*args, **kwargs)
    except Exception as exc:
        return exc


# --- the asyncio client -------------------------------------------------------


async def test_the_asyncio_client_does_the_same(mesh):
    owner, key = await owner_and_key(mesh)
    updates = []
    async with AsyncClient(mesh.address, key) as client:
        done = await client.generate("an async lighthouse", width=512, height=512, on_update=updates.append)
        assert done.status is Status.COMPLETE and done.images and updates[0].status is Status.PENDING
        assert await client.get(done.id) == done
        created = await client.create("an async fox")
        states = [state async for state in client.watch(created.id)]
        assert states[-1].status is Status.COMPLETE
        assert (await client.wait(created.id)).status is Status.COMPLETE
        listed = [g.id async for g in client.list(page_size=1)]
        assert listed == [created.id, done.id]
        with pytest.raises(InvalidArgument) as caught:
            await client.create("a fox", height=7)
        assert [v.field for v in caught.value.violations] == ["height"]
        with pytest.raises(NotFound):
            await client.get(str(uuid.uuid4()))
        with pytest.raises(FailedPrecondition):
            await client.cancel(done.id)
        assert (await client.rotate_webhook_secret()).startswith("whsec_")
    assert sorted(await generation_ids(mesh, owner)) == sorted([done.id, created.id])


async def test_the_asyncio_client_cancels_and_raises_for_a_cancelled_end(slow_mesh):
    key = (await owner_and_key(slow_mesh))[1]
    async with AsyncClient(slow_mesh.address, key) as client:
        created = await client.create("cancelled while awaited")
        waiting = asyncio.ensure_future(client.wait(created.id))
        cancelled = await client.cancel(created.id)
        with pytest.raises(GenerationCancelled):
            await waiting
    assert cancelled.status is Status.CANCELLED


async def test_the_asyncio_client_raises_for_a_failed_end(failing_mesh):
    key = (await owner_and_key(failing_mesh))[1]
    async with AsyncClient(failing_mesh.address, key) as client:
        with pytest.raises(GenerationFailed) as caught:
            await client.generate("doomed, asynchronously")
    assert caught.value.reason and caught.value.generation.status is Status.FAILED


async def test_200_concurrent_generates_from_one_event_loop_all_finish(mesh):
    owner, key = await owner_and_key(mesh)
    async with AsyncClient(mesh.address, key) as client:
        results = await asyncio.gather(
            *(client.generate(f"crowd {i}", width=64, height=64, timeout=300) for i in range(200))
        )
    assert {g.status for g in results} == {Status.COMPLETE}
    assert sorted(g.id for g in results) == sorted(await generation_ids(mesh, owner))
    assert len({g.id for g in results}) == 200
