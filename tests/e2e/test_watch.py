"""WatchGeneration end to end: the current state at once, every committed
change, the end after the final state; over gRPC and as server-sent events
through Envoy; across api_server replicas; through a lost LISTEN connection;
and 1,000 watchers in one process."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import struct
import threading
import time
from datetime import UTC, datetime

import grpc
import psycopg
import pytest

from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from tests.clients import Api, code_of, error_info, json_client, wait_for

FAST = {"MOCK_AI_MIN_DELAY_S": "0.5", "MOCK_AI_MAX_DELAY_S": "1.0"}
PENDING, COMPLETE = generation_pb2.STATUS_PENDING, generation_pb2.STATUS_COMPLETE
WATCH_PATH = "/leo.generation.v1.GenerationService/WatchGeneration"


@pytest.fixture(scope="module")
def mesh(make_mesh):
    env = {**FAST, "WATCH_WRITE_TIMEOUT_S": "1", "WATCH_RECONNECT_BASE_S": "0.5", "WATCH_RECONNECT_CAP_S": "0.5"}
    return make_mesh(env=env)


@pytest.fixture(scope="module")
def key(mesh):
    return mesh.create_api_key("watcher")


@pytest.fixture(scope="module")
def api(mesh, key):
    client = Api(mesh.api_address, key)
    yield client
    client.close()


def watch(api: Api, generation_id: str, timeout_s: float = 20) -> list[generation_pb2.Generation]:
    """Every message of one WatchGeneration stream, to its end."""
    request = generation_pb2.WatchGenerationRequest(generation_id=generation_id)
    stream = api.stub.WatchGeneration(request, metadata=api.metadata, timeout=timeout_s)
    return [message.generation for message in stream]


def received_after_update(generation: generation_pb2.Generation, received: float) -> float:
    """Seconds from the row's last change (its commit, near enough) to receipt."""
    return received - generation.update_time.ToDatetime(tzinfo=UTC).timestamp()


# --- gRPC ---


def test_pending_first_then_complete_and_the_stream_ends(api):
    created = api.create("a kite over the dunes")
    messages = watch(api, created.generation_id)
    assert messages[0].status == PENDING and messages[0].generation_id == created.generation_id
    assert [m.status for m in messages[:-1]] == [PENDING] * (len(messages) - 1)
    done = messages[-1]
    assert done.status == COMPLETE and done.attempts == 1
    assert len(done.images) == 2 and all(created.generation_id in image.url for image in done.images)
    assert done == api.get(created.generation_id)


def test_watching_a_finished_generation_returns_it_and_ends(api):
    done = api.wait_final(api.create("already done").generation_id)
    assert watch(api, done.generation_id) == [done]


def test_another_owners_generation_is_not_found(mesh, api):
    generation_id = api.create("mine").generation_id
    stranger = Api(mesh.api_address, mesh.create_api_key("stranger"))
    try:
        assert code_of(lambda: watch(stranger, generation_id)) == grpc.StatusCode.NOT_FOUND
        missing = "00000000-0000-4000-8000-000000000000"
        assert code_of(lambda: watch(api, missing)) == grpc.StatusCode.NOT_FOUND
        assert code_of(lambda: watch(api, "12345")) == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        stranger.close()


def test_unauthenticated(mesh, api):
    generation_id = api.create("secret").generation_id
    for metadata in ([], [("authorization", "Bearer not-a-key")]):
        anonymous = Api(mesh.api_address, "unused")
        anonymous.metadata = metadata
        try:
            assert code_of(lambda client=anonymous: watch(client, generation_id)) == grpc.StatusCode.UNAUTHENTICATED
        finally:
            anonymous.close()


# --- JSON through Envoy: server-sent events ---


@pytest.fixture(scope="module")
def http(mesh, key):
    with json_client(mesh, key, timeout_s=20) as client:
        yield client


def sse_events(lines) -> list[dict]:
    """The JSON of each event's data. Every event is a `retry:`, an `id:` (the
    data's eventId) and a `data:` line, then a blank line (tests/e2e/test_event_stream.py)."""
    events, fields = [], {}
    for line in lines:
        if line == "":
            assert list(fields) == ["retry", "id", "data"], fields
            data = json.loads(fields["data"])
            assert data["eventId"] == fields["id"]
            events.append(data)
            fields = {}
            continue
        name, _, value = line.partition(": ")
        assert name in ("retry", "id", "data") and name not in fields, line
        fields[name] = value
    assert not fields, f"event not followed by a blank line: {fields}"
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
        first = sse_events([next(lines) for _ in range(4)])[0]  # retry, id, data, blank
        assert first["generation"]["status"] == "STATUS_PENDING"
        cancelled = http.post(f"/v1/generations/{generation_id}:cancel", json={})
        assert cancelled.status_code == 200, cancelled.text
        rest = sse_events(list(lines))
    assert rest[-1]["generation"]["status"] == "STATUS_CANCELLED"
    assert {event["generation"]["status"] for event in rest[:-1]} <= {"STATUS_PENDING"}


def test_http_errors_before_the_first_event_are_json(mesh, http):
    generation_id = http.post("/v1/generations", json={"prompt": "private"}).json()["generation"]["generationId"]
    stranger = mesh.create_api_key("http stranger")
    response = http.get(f"/v1/generations/{generation_id}:watch", headers={"authorization": f"Bearer {stranger}"})
    assert response.status_code == 404
    assert response.json() == {
        "code": 5,
        "message": f"generation {generation_id} not found",
        "details": [error_info("GENERATION_NOT_FOUND")],
    }
    assert http.get(f"/v1/generations/{generation_id}:watch", headers={"authorization": ""}).status_code == 401


# --- A peer that never lets a message through is dropped ---


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload


def _hpack_literal(name: str, value: str) -> bytes:
    """A header as an HPACK literal without indexing (lengths below 127)."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()


def stalled_watch(address: str, key: str, generation_id: str, stop: threading.Event) -> None:
    """A WatchGeneration over raw HTTP/2 that grants the stream no
    flow-control window (SETTINGS_INITIAL_WINDOW_SIZE 0): no message can
    ever be written to it. Answers SETTINGS and PING so the connection lives."""
    host, port = address.split(":")
    request = generation_pb2.WatchGenerationRequest(generation_id=generation_id).SerializeToString()
    headers = [
        (":method", "POST"), (":scheme", "http"), (":path", WATCH_PATH), (":authority", address),
        ("content-type", "application/grpc"), ("te", "trailers"), ("authorization", f"Bearer {key}"),
    ]  # fmt: skip
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            + _frame(0x4, 0, 0, struct.pack(">HI", 0x4, 0))
            + _frame(0x1, 0x4, 1, b"".join(_hpack_literal(n, v) for n, v in headers))
            + _frame(0x0, 0x1, 1, b"\x00" + struct.pack(">I", len(request)) + request)
        )
        sock.settimeout(0.1)
        buffer = b""
        while not stop.is_set():
            try:
                buffer += sock.recv(65536)
            except TimeoutError:
                continue
            while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3], "big"):
                length, kind, flags = int.from_bytes(buffer[:3], "big"), buffer[3], buffer[4]
                payload, buffer = buffer[9 : 9 + length], buffer[9 + length :]
                if kind == 0x4 and not flags & 0x1:
                    sock.sendall(_frame(0x4, 0x1, 0, b""))
                elif kind == 0x6 and not flags & 0x1:
                    sock.sendall(_frame(0x6, 0x1, 0, payload))


def test_a_watcher_that_takes_no_messages_is_dropped_and_blocks_nobody(mesh, api, key):
    generation_id = api.create("for a stalled peer").generation_id
    stop = threading.Event()
    stalled = threading.Thread(target=stalled_watch, args=(mesh.api_address, key, generation_id, stop))
    stalled.start()
    try:
        messages = watch(api, generation_id)
        assert messages[-1].status == COMPLETE
        log = mesh.api_servers[0]
        dropped = wait_for(
            lambda: [r for r in log.log_records() if r.get("event") == "slow watcher dropped"],
            timeout_s=5,
            what="the stalled watcher to be dropped",
        )
        assert dropped[0]["timeout_s"] == 1.0
        wait_for(
            lambda: [
                r for r in log.log_records() if r.get("method") == WATCH_PATH and r.get("code") == "DEADLINE_EXCEEDED"
            ],
            timeout_s=5,
            what="the dropped stream's log line",
        )
    finally:
        stop.set()
        stalled.join()


# --- The LISTEN connection is lost while generations complete ---


def listener(conn: psycopg.Connection) -> tuple[int, datetime] | None:
    row = conn.execute(
        "SELECT pid, backend_start FROM pg_stat_activity "
        "WHERE application_name = 'leo-listen' AND datname = current_database() AND query LIKE 'LISTEN%'"
    ).fetchone()
    return row and (row[0], row[1])


async def test_watchers_get_their_final_state_though_the_listen_connection_is_killed(mesh, key):
    channel = grpc.aio.insecure_channel(mesh.api_address)
    stub = generation_pb2_grpc.GenerationServiceStub(channel)
    metadata = [("authorization", f"Bearer {key}")]
    stopping = threading.Event()
    gaps: list[tuple[datetime, datetime]] = []  # (killed, next listener started)

    def kill_repeatedly() -> None:
        with psycopg.connect(mesh.database_url, autocommit=True) as conn:
            while not stopping.is_set():
                current = wait_for(lambda: listener(conn), timeout_s=10, interval_s=0.01, what="a LISTEN connection")
                time.sleep(0.2)  # let it listen a little
                killed = conn.execute("SELECT clock_timestamp(), pg_terminate_backend(%s)", (current[0],)).fetchone()[0]
                new = wait_for(
                    lambda old=current: (found := listener(conn)) and found[0] != old[0] and found,
                    timeout_s=10,
                    interval_s=0.01,
                    what="the LISTEN connection to come back",
                )
                gaps.append((killed, new[1]))

    async def watch_one(index: int) -> list[generation_pb2.Generation]:
        request = generation_pb2.CreateGenerationRequest(prompt=f"through the storm {index}", width=64, height=64)
        created = (await stub.CreateGeneration(request, metadata=metadata, timeout=10)).generation
        call = stub.WatchGeneration(
            generation_pb2.WatchGenerationRequest(generation_id=created.generation_id), metadata=metadata, timeout=30
        )
        return [message.generation async for message in call]

    killer = asyncio.create_task(asyncio.to_thread(kill_repeatedly))
    try:
        watchers = []
        for index in range(40):  # creates spread over ~2 s, so completions are too
            watchers.append(asyncio.create_task(watch_one(index)))
            await asyncio.sleep(0.05)
        results = await asyncio.wait_for(asyncio.gather(*watchers), timeout=40)
    finally:
        stopping.set()
        await killer
        await channel.close()

    assert all(messages[-1].status == COMPLETE for messages in results)
    assert all(messages[0].status == PENDING for messages in results)
    completed = [m[-1].complete_time.ToDatetime(tzinfo=UTC) for m in results]
    unheard = sum(any(killed <= at <= back for killed, back in gaps) for at in completed)
    print(f"\nLISTEN connection killed {len(gaps)} times; {unheard} of 40 completions committed while nobody listened")
    assert len(gaps) >= 3 and unheard >= 1
    # The last reconnection may be logged just after the killer saw it listen.
    wait_for(
        lambda: (
            sum(r.get("event") == "change feed reconnected" for r in mesh.api_servers[0].log_records()) >= len(gaps)
        ),
        timeout_s=10,
        what="a reconnection logged for each killed LISTEN connection",
    )


# --- Two replicas, and 1,000 watchers on one process ---
#
# The real mock AI finishes the jobs; its delay is set long enough for the
# watchers to be open before the first result comes back.

GENERATIONS, WATCHERS_EACH, CHANNELS = 200, 5, 10
# What one more open watch may cost the api_server, at most.
RSS_BUDGET_PER_WATCHER_KIB = 64


async def create_generations(address: str, key: str, count: int) -> list[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        metadata = [("authorization", f"Bearer {key}")]
        created = await asyncio.gather(
            *(
                stub.CreateGeneration(
                    generation_pb2.CreateGenerationRequest(prompt=f"watched {i}", width=64, height=64),
                    metadata=metadata,
                    timeout=20,
                )
                for i in range(count)
            )
        )
    return [response.generation.generation_id for response in created]


def pending_then_complete(statuses: list[int]) -> bool:
    """PENDING first (more PENDING messages as attempts are counted), COMPLETE last."""
    return len(statuses) >= 2 and set(statuses[:-1]) == {PENDING} and statuses[-1] == COMPLETE


async def test_a_watcher_on_one_replica_sees_a_generation_finished_through_another(make_mesh):
    mesh = make_mesh(env={"MOCK_AI_MIN_DELAY_S": "2", "MOCK_AI_MAX_DELAY_S": "3"}, api_replicas=2, with_envoy=False)
    key = await asyncio.to_thread(mesh.create_api_key, "replicated")
    ids = await create_generations(mesh.api_address, key, 10)  # on the first replica
    metadata = [("authorization", f"Bearer {key}")]

    async def watch_on_second(channel, generation_id: str) -> list[tuple[generation_pb2.Generation, float]]:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        request = generation_pb2.WatchGenerationRequest(generation_id=generation_id)
        return [
            (message.generation, time.time())
            async for message in stub.WatchGeneration(request, metadata=metadata, timeout=30)
        ]

    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.ports.api[1]}") as second:
        results = await asyncio.wait_for(
            asyncio.gather(*(watch_on_second(second, generation_id) for generation_id in ids)), timeout=30
        )

    for messages in results:
        assert pending_then_complete([generation.status for generation, _ in messages])
    delays = sorted(received_after_update(*messages[-1]) for messages in results)
    print(
        f"\ncompletion seen on the other replica, commit to receipt ({len(delays)} generations): "
        f"min {delays[0] * 1000:.1f} ms, median {statistics.median(delays) * 1000:.1f} ms,"
        f" max {delays[-1] * 1000:.1f} ms"
    )


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


async def test_a_thousand_watchers_on_one_process(make_mesh):
    env = {
        "MOCK_AI_MIN_DELAY_S": "15",
        "MOCK_AI_MAX_DELAY_S": "17",
        "MAX_PENDING_PER_OWNER": "1000",
        "MOCK_AI_MAX_CONCURRENT_JOBS": "1000",
    }
    mesh = make_mesh(env=env, with_envoy=False)
    key = await asyncio.to_thread(mesh.create_api_key, "crowd")
    ids = await create_generations(mesh.api_address, key, GENERATIONS)
    metadata = [("authorization", f"Bearer {key}")]
    pid = mesh.api_servers[0].proc.pid
    before = rss_kib(pid)

    channels = [grpc.aio.insecure_channel(mesh.api_address) for _ in range(CHANNELS)]
    stubs = [generation_pb2_grpc.GenerationServiceStub(channel) for channel in channels]
    watchers_count = GENERATIONS * WATCHERS_EACH
    opened = 0
    all_open = asyncio.Event()

    async def watch_one(index: int) -> list[int]:
        nonlocal opened
        request = generation_pb2.WatchGenerationRequest(generation_id=ids[index % GENERATIONS])
        statuses = []
        async for message in stubs[index % CHANNELS].WatchGeneration(request, metadata=metadata, timeout=60):
            statuses.append(message.generation.status)
            if len(statuses) == 1:
                opened += 1
                if opened == watchers_count:
                    all_open.set()
        return statuses

    try:
        started = time.monotonic()
        watchers = [asyncio.create_task(watch_one(index)) for index in range(watchers_count)]
        await asyncio.wait_for(all_open.wait(), timeout=30)
        opened_s = time.monotonic() - started
        during = rss_kib(pid)
        results = await asyncio.wait_for(asyncio.gather(*watchers), timeout=45)
    finally:
        for channel in channels:
            await channel.close()
    after = rss_kib(pid)

    assert all(pending_then_complete(statuses) for statuses in results)
    per_watcher = (during - before) / watchers_count
    print(
        f"\n{watchers_count} watchers on {GENERATIONS} generations: all open in {opened_s:.2f} s; api_server RSS "
        f"{before / 1024:.1f} MiB before, {during / 1024:.1f} MiB with all open "
        f"({per_watcher:.1f} KiB per watcher), {after / 1024:.1f} MiB after they ended"
    )
    assert per_watcher < RSS_BUDGET_PER_WATCHER_KIB


# --- shutdown ---


def test_sigterm_ends_open_watches_at_once_so_clients_move_on(make_mesh):
    mesh = make_mesh(env={"MOCK_AI_MIN_DELAY_S": "600", "MOCK_AI_MAX_DELAY_S": "600"}, with_envoy=False)
    api = Api(mesh.api_address, mesh.create_api_key("drained"))
    generation_id = api.create("held for long").generation_id
    request = generation_pb2.WatchGenerationRequest(generation_id=generation_id)
    stream = api.stub.WatchGeneration(request, metadata=api.metadata, timeout=60)
    assert next(stream).generation.status == PENDING
    (server,) = mesh.api_servers
    assert server.stop() == 0
    # Ended by the drain, not cut when the grace period ran out.
    with pytest.raises(grpc.RpcError) as caught:
        list(stream)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and "watch again" in caught.value.details()
