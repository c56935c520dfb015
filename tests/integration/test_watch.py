"""WatchGeneration on the whole flow in process (real PostgreSQL, the real
mock AI and callback server): the current state at once, every committed
change, the end after the final state; ownership and keys; a peer that
takes no messages; a lost LISTEN connection; a second replica.

Over JSON through Envoy (server-sent events) and on 1,000 watchers of one
process: tests/e2e/test_through_envoy.py and tests/e2e/test_load.py."""

from __future__ import annotations

import asyncio
import socket
import statistics
import struct
import threading
import time
from datetime import UTC, datetime

import grpc
import psycopg
import pytest

from leo.generation.v1 import generation_pb2
from tests.inprocess import Client, api_server, channel_to, code_of, flow, until
from tests.log_lines import captured_lines
from tests.mesh_fixtures import migrated_database

PENDING, COMPLETE = generation_pb2.STATUS_PENDING, generation_pb2.STATUS_COMPLETE
WATCH_PATH = "/leo.generation.v1.GenerationService/WatchGeneration"
FAST_AI = {"mock_ai_min_delay_s": 0.5, "mock_ai_max_delay_s": 1.0}


@pytest.fixture(scope="module")
async def mesh(postgres):
    with migrated_database(postgres) as database_url:
        async with flow(
            database_url,
            ai=FAST_AI,
            watch_write_timeout_s=1,
            watch_reconnect_base_s=0.5,
            watch_reconnect_cap_s=0.5,
        ) as running:
            yield running


@pytest.fixture
async def api(mesh) -> Client:
    return await mesh.client()


def received_after_update(generation: generation_pb2.Generation, received: float) -> float:
    """Seconds from the row's last change (its commit, near enough) to receipt."""
    return received - generation.update_time.ToDatetime(tzinfo=UTC).timestamp()


async def test_pending_first_then_complete_and_the_stream_ends(api):
    created = await api.create(prompt="a kite over the dunes")
    messages = await api.watch(created.generation_id)
    assert messages[0].status == PENDING and messages[0].generation_id == created.generation_id
    assert [m.status for m in messages[:-1]] == [PENDING] * (len(messages) - 1)
    done = messages[-1]
    assert done.status == COMPLETE and done.attempts == 1
    assert len(done.images) == 2 and all(created.generation_id in image.url for image in done.images)
    assert done == await api.get(created.generation_id)


async def test_watching_a_finished_generation_returns_it_and_ends(api):
    done = await api.wait_final((await api.create(prompt="already done")).generation_id)
    assert await api.watch(done.generation_id) == [done]


async def test_another_owners_generation_is_not_found(mesh, api):
    generation_id = (await api.create(prompt="mine")).generation_id
    stranger = await mesh.client()
    assert await code_of(stranger.watch(generation_id)) == grpc.StatusCode.NOT_FOUND
    missing = "00000000-0000-4000-8000-000000000000"
    assert await code_of(api.watch(missing)) == grpc.StatusCode.NOT_FOUND
    assert await code_of(api.watch("12345")) == grpc.StatusCode.INVALID_ARGUMENT


async def test_unauthenticated(mesh, api):
    generation_id = (await api.create(prompt="secret")).generation_id
    for metadata in ((), (("authorization", "Bearer not-a-key"),)):
        anonymous = await mesh.client()
        anonymous.metadata = metadata
        assert await code_of(anonymous.watch(generation_id)) == grpc.StatusCode.UNAUTHENTICATED


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


async def test_a_watcher_that_takes_no_messages_is_dropped_and_blocks_nobody(mesh, api):
    generation_id = (await api.create(prompt="for a stalled peer")).generation_id
    stop = threading.Event()
    with captured_lines() as lines:
        stalled = asyncio.create_task(asyncio.to_thread(stalled_watch, mesh.address, api.key, generation_id, stop))
        try:
            messages = await api.watch(generation_id)
            assert messages[-1].status == COMPLETE
            dropped = await until(
                lambda: [r for r in lines if r.get("event") == "slow watcher dropped"], "the stalled watcher dropped"
            )
            assert dropped[0]["timeout_s"] == 1.0
            await until(
                lambda: [r for r in lines if r.get("method") == WATCH_PATH and r.get("code") == "DEADLINE_EXCEEDED"],
                "the dropped stream's log line",
            )
        finally:
            stop.set()
            await stalled


# --- The LISTEN connection is lost while generations complete ---


def listener(conn: psycopg.Connection) -> tuple[int, datetime] | None:
    row = conn.execute(
        "SELECT pid, backend_start FROM pg_stat_activity "
        "WHERE application_name = 'leo-listen' AND datname = current_database() AND query LIKE 'LISTEN%'"
    ).fetchone()
    return row and (row[0], row[1])


def wait_listener(conn: psycopg.Connection, other_than: int | None = None) -> tuple[int, datetime]:
    deadline = time.monotonic() + 10
    while not ((found := listener(conn)) and found[0] != other_than):
        assert time.monotonic() < deadline, "no LISTEN connection came back"
        time.sleep(0.01)
    return found


async def test_watchers_get_their_final_state_though_the_listen_connection_is_killed(mesh, api):
    stopping = threading.Event()
    gaps: list[tuple[datetime, datetime]] = []  # (killed, next listener started)

    def kill_repeatedly() -> None:
        with psycopg.connect(mesh.database_url, autocommit=True) as conn:
            while not stopping.is_set():
                current = wait_listener(conn)
                time.sleep(0.2)  # let it listen a little
                killed = conn.execute("SELECT clock_timestamp(), pg_terminate_backend(%s)", (current[0],)).fetchone()[0]
                gaps.append((killed, wait_listener(conn, other_than=current[0])[1]))

    async def watch_one(index: int) -> list[generation_pb2.Generation]:
        created = await api.create(prompt=f"through the storm {index}", width=64, height=64)
        return await api.watch(created.generation_id)

    with captured_lines() as lines:
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

        assert all(messages[-1].status == COMPLETE for messages in results)
        assert all(messages[0].status == PENDING for messages in results)
        completed = [m[-1].complete_time.ToDatetime(tzinfo=UTC) for m in results]
        unheard = sum(any(killed <= at <= back for killed, back in gaps) for at in completed)
        print(f"\nLISTEN connection killed {len(gaps)} times; {unheard} of 40 completions committed unheard")
        assert len(gaps) >= 3 and unheard >= 1
        # The last reconnection may be logged just after the killer saw it listen.
        await until(
            lambda: sum(r.get("event") == "change feed reconnected" for r in lines) >= len(gaps),
            "a reconnection logged for each killed LISTEN connection",
        )


# --- A second replica ---


def pending_then_complete(statuses: list[int]) -> bool:
    """PENDING first (more PENDING messages as attempts are counted), COMPLETE last."""
    return len(statuses) >= 2 and set(statuses[:-1]) == {PENDING} and statuses[-1] == COMPLETE


async def test_a_watcher_on_one_replica_sees_a_generation_finished_through_another(mesh, api):
    """The generations are created on the flow's api_server and finished by
    the callback server; the watches are on a second api_server of the same
    database, which hears of each change only through its own LISTEN."""
    second_replica = api_server(mesh.database_url, real_workers=True, media=mesh.media)
    async with second_replica as second, channel_to(second) as channel:
        on_second = Client(channel, api.key)
        ids = [(await api.create(prompt=f"replicated {i}", width=64, height=64)).generation_id for i in range(10)]

        async def watch_on_second(generation_id: str) -> list[tuple[generation_pb2.Generation, float]]:
            request = generation_pb2.WatchGenerationRequest(generation_id=generation_id)
            call = on_second.stub.WatchGeneration(request, metadata=on_second.metadata, timeout=30)
            return [(message.generation, time.time()) async for message in call]

        results = await asyncio.wait_for(asyncio.gather(*map(watch_on_second, ids)), timeout=30)

    for messages in results:
        assert pending_then_complete([generation.status for generation, _ in messages])
    delays = sorted(received_after_update(*messages[-1]) for messages in results)
    print(
        f"\ncompletion seen on the other replica, commit to receipt ({len(delays)} generations): "
        f"min {delays[0] * 1000:.1f} ms, median {statistics.median(delays) * 1000:.1f} ms,"
        f" max {delays[-1] * 1000:.1f} ms"
    )
