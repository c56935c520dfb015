"""A wait whose server goes away before the watch's first answer, over a real
in-process gRPC server: the wait ends (exit 5 for `leo`), it never hangs.

The channel's own retry policy would retry such a stream, and that retried
attempt waits forever (grpcio 1.85), even once the server is back; the wait
retries its watch itself instead (leo_client.channel, leo_client.following).
"""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from leo_client import AsyncClient, Client, Unavailable

SERVICE = "leo.generation.v1.GenerationService"
# Guards against a hang, never a measure.
PATIENCE_S = 30


@pytest.fixture
async def unanswering_server():
    """A GenerationService whose watches never answer (as one stuck behind a
    slow key lookup); `started` is set once a watch is in the handler."""
    started = asyncio.Event()

    async def watch(request: bytes, context: grpc.aio.ServicerContext):
        started.set()
        await asyncio.Event().wait()
        yield b""

    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"WatchGeneration": grpc.unary_stream_rpc_method_handler(watch)}
    )
    server = grpc.aio.server(handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield server, f"127.0.0.1:{port}", started
    await server.stop(None)


async def test_a_watch_cut_before_its_first_answer_ends_the_wait(unanswering_server):
    server, target, started = unanswering_server
    with Client(target, "leo_key") as client:
        waiting = asyncio.ensure_future(asyncio.to_thread(client.wait, str(uuid.uuid4()), timeout=None))
        await started.wait()
        await server.stop(0.1)  # the watch is cancelled, then nobody listens there
        with pytest.raises(Unavailable):
            async with asyncio.timeout(PATIENCE_S):
                await waiting


async def test_the_asyncio_client_too(unanswering_server):
    server, target, started = unanswering_server
    async with AsyncClient(target, "leo_key") as client:
        waiting = asyncio.ensure_future(client.wait(str(uuid.uuid4()), timeout=None))
        await started.wait()
        await server.stop(0.1)
        with pytest.raises(Unavailable):
            async with asyncio.timeout(PATIENCE_S):
                await waiting
