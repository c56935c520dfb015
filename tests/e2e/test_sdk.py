"""leo_client against the real mesh: every method through Envoy's gRPC port,
typed errors, waiting (through a broken watch too), a create whose answer is
lost on the way, and the asyncio client with 200 generations at once."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import uuid

import grpc
import psycopg
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
from tests.clients import wait_for

FAST = {"MOCK_AI_MIN_DELAY_S": "0.2", "MOCK_AI_MAX_DELAY_S": "0.5"}


@pytest.fixture(scope="module")
def mesh(make_mesh):
    """Fast generations; room for 200 PENDING per owner; webhooks to this machine allowed."""
    return make_mesh(env={**FAST, "MAX_PENDING_PER_OWNER": "300", "WEBHOOK_ALLOW_PRIVATE_URLS": "true"})


@pytest.fixture(scope="module")
def slow_mesh(make_mesh):
    """Generations stay PENDING for the whole of a test; at most 2 PENDING per owner."""
    return make_mesh(env={"MOCK_AI_MIN_DELAY_S": "120", "MOCK_AI_MAX_DELAY_S": "150", "MAX_PENDING_PER_OWNER": "2"})


@pytest.fixture(scope="module")
def failing_mesh(make_mesh):
    """Every generation ends FAILED."""
    return make_mesh(env={**FAST, "MOCK_AI_GENERATION_FAILURE_RATE": "1"})


def envoy(mesh) -> str:
    return f"127.0.0.1:{mesh.ports.envoy}"


def owner_and_key(mesh) -> tuple[str, str]:
    owner = f"sdk-{uuid.uuid4().hex[:8]}"
    return owner, mesh.create_api_key(owner)


def client_of(mesh) -> Client:
    """A client of a new owner, through Envoy."""
    return Client(envoy(mesh), owner_and_key(mesh)[1])


def generation_ids(database_url: str, owner: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute('SELECT "generationId"::text FROM generations WHERE owner = %s', (owner,)).fetchall()
    return [row[0] for row in rows]


# --- the blocking client ----------------------------------------------------


def test_the_default_client_reads_target_and_key_from_the_environment(mesh, monkeypatch):
    owner, key = owner_and_key(mesh)
    monkeypatch.setenv("LEO_API_TARGET", envoy(mesh))
    monkeypatch.setenv("LEO_API_KEY", key)
    with Client() as client:
        created = client.create("from the environment")
        assert client.get(created.id).prompt == "from the environment"
    assert generation_ids(mesh.database_url, owner) == [created.id]


def test_generate_waits_and_returns_the_complete_generation(mesh):
    updates = []
    with client_of(mesh) as client:
        done = client.generate("a lighthouse at dusk", model=Model.SD, width=512, height=768, on_update=updates.append)
        assert done == client.get(done.id)
    assert done.status is Status.COMPLETE and done.done
    assert done.model is Model.SD and (done.width, done.height) == (512, 768)
    assert done.images and all(done.id in image.url and image.width == 512 for image in done.images)
    assert updates[0].status is Status.PENDING and updates[0].id == done.id
    assert updates[-1] == done
    assert all(a != b for a, b in itertools.pairwise(updates))


def test_download_saves_each_file_streamed_with_its_extension(mesh, tmp_path):
    with client_of(mesh) as client:
        done = client.generate("a lighthouse at dusk", width=128, height=96)
        paths = client.download(done, tmp_path / "images")
        assert [p.name for p in paths] == [f"{done.id}-0.png", f"{done.id}-1.png"]
        assert all(Image.open(p).size == (128, 96) for p in paths)
        assert [p.stat().st_size for p in paths] == [a.byte_size for a in done.assets]
        one = client.download_asset(done.id, 1, tmp_path / "chosen.png")
        assert one == tmp_path / "chosen.png" and one.read_bytes() == paths[1].read_bytes()
        with pytest.raises(NotFound):
            client.download_asset(done.id, 2, tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["chosen.png", "images"]  # nothing half written


def test_the_asyncio_client_downloads_a_video(mesh, tmp_path):
    key = owner_and_key(mesh)[1]

    async def run():
        async with AsyncClient(envoy(mesh), key) as client:
            done = await client.generate("a whale", kind="video", width=64, height=64)
            return done, await client.download(done.id, tmp_path)

    done, (path,) = asyncio.run(run())
    assert done.kind is Kind.VIDEO and path.name == f"{done.id}-0.webp"
    animation = Image.open(path)
    assert animation.is_animated and animation.n_frames == done.assets[0].frame_count


def test_create_answers_pending_and_wait_follows_it_to_the_end(mesh):
    with client_of(mesh) as client:
        created = client.create("a red fox in snow", model="sdxl", width=1024, height=768)
        assert created.status is Status.PENDING and created.model is Model.SDXL and created.height == 768
        assert client.get(created.id).id == created.id
        done = client.wait(created.id)
    assert done.status is Status.COMPLETE and done.id == created.id


def test_generate_without_waiting_returns_the_pending_generation(mesh):
    with client_of(mesh) as client:
        pending = client.generate("not waited for", wait=False)
        assert pending.status is Status.PENDING
        assert client.wait(pending.id).status is Status.COMPLETE


def test_watch_streams_states_until_the_final_one(mesh):
    with client_of(mesh) as client:
        created = client.create("a kite over the dunes")
        states = list(client.watch(created.id))
    assert states[0].id == created.id
    assert [s.status for s in states[:-1]] == [Status.PENDING] * (len(states) - 1)
    assert states[-1].status is Status.COMPLETE and states[-1].images


def test_watches_closed_early_leave_the_api_server_serving(mesh):
    """Closing a watch before its end cancels the call. The api_server once
    crashed on that (reading the peer of a cancelled call), within a few."""
    with client_of(mesh) as client:
        for i in range(30):
            stream = client.watch(client.create(f"watched briefly {i}").id)
            assert next(stream).status is Status.PENDING
            stream.close()
        assert all(api_server.running() for api_server in mesh.api_servers)
        assert client.generate("still served").status is Status.COMPLETE


def test_list_walks_every_page(mesh):
    with client_of(mesh) as client:
        created = [client.create(f"page test {i}").id for i in range(5)]
        listed = [g.id for g in client.list(page_size=2)]
        first_three = [g.id for g in itertools.islice(client.list(page_size=2), 3)]
        for generation_id in created:
            client.wait(generation_id)
        complete = [g.id for g in client.list(status=Status.COMPLETE, page_size=2)]
        assert list(client.list(status="failed")) == []
    assert listed == created[::-1]
    assert first_three == created[::-1][:3]
    assert sorted(complete) == sorted(created)


def test_a_field_error_is_invalid_argument_naming_the_field(mesh):
    owner, key = owner_and_key(mesh)
    with Client(envoy(mesh), key) as client:
        with pytest.raises(InvalidArgument) as width:
            client.create("a fox", width=1001)
        with pytest.raises(InvalidArgument) as prompt:
            client.create("   ")
    assert [v.field for v in width.value.violations] == ["width"]
    assert "multiple of 8" in width.value.violations[0].description
    assert width.value.code is grpc.StatusCode.INVALID_ARGUMENT
    # The server's ErrorInfo, read whatever its reason.
    assert width.value.reason and width.value.domain == "generation.leo.example"
    assert [v.field for v in prompt.value.violations] == ["prompt"]
    assert generation_ids(mesh.database_url, owner) == []


def test_errors_come_back_typed(mesh):
    with client_of(mesh) as client:
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
    with Client(envoy(mesh), "leo_not_a_key") as stranger, pytest.raises(Unauthenticated):
        stranger.get(done.id)


def test_webhooks_need_a_secret_and_then_are_recorded(mesh):
    with client_of(mesh) as client:
        with pytest.raises(FailedPrecondition, match="secret"):
            client.create("hooked", webhook_url="http://127.0.0.1:9/hook")
        secret = client.rotate_webhook_secret()
        assert secret.startswith("whsec_") and client.rotate_webhook_secret() != secret
        hooked = client.create("hooked", webhook_url="http://127.0.0.1:9/hook")
    assert hooked.webhook_url == "http://127.0.0.1:9/hook"


def test_a_failed_generation_raises_with_its_reason(failing_mesh):
    with client_of(failing_mesh) as client:
        with pytest.raises(GenerationFailed) as caught:
            client.generate("doomed")
        stored = client.get(caught.value.generation.id)
        with pytest.raises(GenerationFailed):
            client.wait(stored.id)
    assert stored.status is Status.FAILED and stored.failure_reason
    assert caught.value.reason == stored.failure_reason
    assert caught.value.generation.status is Status.FAILED


def test_cancel_and_a_wait_that_ends_cancelled(slow_mesh):
    with client_of(slow_mesh) as client:
        created = client.create("never finished")
        outcome: list[BaseException] = []

        def wait() -> None:
            try:
                client.wait(created.id)
            except BaseException as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        cancelled = client.cancel(created.id)
        waiter.join(60)
    assert cancelled.status is Status.CANCELLED
    assert len(outcome) == 1 and isinstance(outcome[0], GenerationCancelled)
    assert outcome[0].generation.id == created.id


def test_waiting_gives_up_after_its_timeout_with_the_last_state(slow_mesh):
    with client_of(slow_mesh) as client, pytest.raises(WaitTimeout) as caught:
        client.generate("too slow", timeout=1)
    assert caught.value.generation.status is Status.PENDING


def test_too_many_pending_is_rate_limited(slow_mesh):
    with client_of(slow_mesh) as client:
        client.create("one")
        client.create("two")
        with pytest.raises(RateLimited, match="at most 2"):
            client.create("three")


def test_envoy_s_rate_limit_tells_the_sdk_when_to_retry(make_mesh):
    """Through Envoy, a RESOURCE_EXHAUSTED of the rate limiter carries the
    RetryInfo that RateLimited.retry_after reads (one bucket refill)."""
    limited = make_mesh(env={"ENVOY_RATE_LIMIT_PER_KEY_RPS": "1", "ENVOY_RATE_LIMIT_PER_KEY_BURST": "3"})
    with client_of(limited) as client, pytest.raises(RateLimited) as caught:
        for _ in range(60):
            list(client.list())
    assert (caught.value.reason, caught.value.retry_after) == ("RATE_LIMITED", 1.0)


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
    proxy = AnswerCuttingProxy(mesh.ports.envoy)
    yield proxy
    proxy.close()


def test_a_create_whose_answer_is_lost_is_retried_and_makes_one_generation(mesh, proxy):
    owner, key = owner_and_key(mesh)
    proxy.arm()
    with Client(proxy.target, key) as client:
        created = client.create("made exactly once")
    assert proxy.cuts == 1 and proxy.connections == 2
    assert generation_ids(mesh.database_url, owner) == [created.id]


def test_without_a_request_id_the_same_fault_makes_two_generations(mesh, proxy):
    """The fault above really strikes after the server committed the create:
    a bare stub with the same retry policy but no request_id makes two."""
    owner, key = owner_and_key(mesh)
    proxy.arm()
    with grpc.insecure_channel(proxy.target, options=OPTIONS) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        stub.CreateGeneration(
            generation_pb2.CreateGenerationRequest(prompt="made twice"),
            metadata=[("authorization", f"Bearer {key}")],
            timeout=30,
        )
    assert proxy.cuts == 1
    assert len(generation_ids(mesh.database_url, owner)) == 2


# --- a watch that breaks -------------------------------------------------------


def status_and_attempts(database_url: str, generation_id: str) -> tuple[str, int]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            'SELECT status::text, attempts FROM generations WHERE "generationId" = %s', (generation_id,)
        ).fetchone()


def test_a_broken_watch_is_watched_again(make_mesh):
    """The api_server goes away while a wait watches (its stream ends
    UNAVAILABLE after the first state), the generation completes meanwhile,
    the api_server comes back: the wait watches again through Envoy and gets
    the COMPLETE generation."""
    mesh = make_mesh(env={"MOCK_AI_MIN_DELAY_S": "2", "MOCK_AI_MAX_DELAY_S": "3"})
    api_server = mesh.api_servers[0]
    with client_of(mesh) as client:
        created = client.create("outlives its api_server")
        wait_for(lambda: status_and_attempts(mesh.database_url, created.id)[1] >= 1, what="the dispatch")
        outcome: list[object] = []
        states: list[object] = []
        waiter = threading.Thread(
            target=lambda: outcome.append(_outcome(client.wait, created.id, timeout=120, on_update=states.append))
        )
        waiter.start()
        wait_for(lambda: states, what="the watch's first state")
        api_server.stop()
        wait_for(
            lambda: status_and_attempts(mesh.database_url, created.id)[0] == "COMPLETE",
            timeout_s=60,
            what="the generation to complete without an api_server",
        )
        mesh.start_process(api_server)
        waiter.join(120)
    assert len(outcome) == 1
    assert getattr(outcome[0], "status", outcome[0]) is Status.COMPLETE


def _outcome(call, *args, **kwargs) -> object:
    try:
        return call(*args, **kwargs)
    except Exception as exc:
        return exc


# --- the asyncio client -------------------------------------------------------


@pytest.fixture(scope="module")
def async_key(mesh):
    return owner_and_key(mesh)


async def test_the_asyncio_client_does_the_same(mesh, async_key):
    owner, key = async_key
    updates = []
    async with AsyncClient(envoy(mesh), key) as client:
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
    assert sorted(generation_ids(mesh.database_url, owner)) == sorted([done.id, created.id])


@pytest.fixture(scope="module")
def slow_key(slow_mesh):
    return owner_and_key(slow_mesh)[1]


async def test_the_asyncio_client_cancels_and_raises_for_a_cancelled_end(slow_mesh, slow_key):
    async with AsyncClient(envoy(slow_mesh), slow_key) as client:
        created = await client.create("cancelled while awaited")
        waiting = asyncio.ensure_future(client.wait(created.id))
        cancelled = await client.cancel(created.id)
        with pytest.raises(GenerationCancelled):
            await waiting
    assert cancelled.status is Status.CANCELLED


@pytest.fixture(scope="module")
def failing_key(failing_mesh):
    return owner_and_key(failing_mesh)[1]


async def test_the_asyncio_client_raises_for_a_failed_end(failing_mesh, failing_key):
    async with AsyncClient(envoy(failing_mesh), failing_key) as client:
        with pytest.raises(GenerationFailed) as caught:
            await client.generate("doomed, asynchronously")
    assert caught.value.reason and caught.value.generation.status is Status.FAILED


@pytest.fixture(scope="module")
def crowd(mesh):
    return owner_and_key(mesh)


async def test_200_concurrent_generates_from_one_event_loop_all_finish(mesh, crowd):
    """Straight to the api_server: 200 creates and 200 watches at once are
    beyond Envoy's listener rate limit (100/s, bursts of 200)."""
    owner, key = crowd
    async with AsyncClient(mesh.api_address, key) as client:
        results = await asyncio.gather(
            *(client.generate(f"crowd {i}", width=64, height=64, timeout=300) for i in range(200))
        )
    assert {g.status for g in results} == {Status.COMPLETE}
    assert sorted(g.id for g in results) == sorted(generation_ids(mesh.database_url, owner))
    assert len({g.id for g in results}) == 200
