"""A stream's log line speaks of that stream, even when the garbage
collector closes the stream later, inside some other call."""

from __future__ import annotations

import asyncio
import contextvars

import grpc
import pytest

from leo_mesh.grpc_server import RpcInterceptor
from leo_mesh.telemetry import tracing
from tests.log_lines import captured_lines


class Context:
    """What the interceptor asks of a call's context."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def code(self) -> grpc.StatusCode | None:
        return None

    def cancelled(self) -> bool:
        return False

    def details(self) -> str:
        return ""


@pytest.fixture
def lines():
    with captured_lines("leo.rpc") as captured:
        yield captured


async def watch(request, context):
    tracing.about_generation("the-watched-one")
    yield "first"
    await asyncio.Event().wait()


async def test_a_stream_closed_from_another_call_logs_its_own_generation(lines):
    handler = RpcInterceptor()._wrap("/test.Service/Watch", grpc.unary_stream_rpc_method_handler(watch))
    stream = handler.unary_stream(object(), Context())

    async def serve_first_message() -> str:
        return await anext(stream)

    # The call runs in a context of its own, as a gRPC call's task does.
    assert await asyncio.get_running_loop().create_task(serve_first_message(), context=contextvars.Context()) == "first"

    async def another_call_closes_it() -> None:
        tracing.about_generation("someone-else")
        await stream.aclose()

    await asyncio.get_running_loop().create_task(another_call_closes_it(), context=contextvars.Context())

    (line,) = [entry for entry in lines if entry["event"] == "rpc"]
    assert line["method"] == "/test.Service/Watch" and line["messages"] == 1
    assert line["generation_id"] == "the-watched-one"
