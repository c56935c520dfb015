"""The services' JSON lines (leo_mesh.logs): what a line holds, and that the
hot-path writer (info_line) writes exactly what logging would."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import empty_pb2

from api_server.auth import bearer_key
from leo_mesh import logs
from leo_mesh.telemetry import tracing
from tests.raw_http import grpc_frame, h2_request

FIELDS = {"method": "/leo.test.v1.Service/Call", "code": "OK", "ms": 1.25, "peer": "ipv4:127.0.0.1:5555"}


@pytest.fixture
def stderr(monkeypatch):
    """Call it to configure() logging as a service does, writing to a
    buffer (inside the test: pytest sets its own handlers and stderr for
    each phase); logging as it was afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()

    def configure() -> io.StringIO:
        monkeypatch.setattr("sys.stderr", buffer)  # here too: pytest sets it for each phase
        logs.configure("test", worker=3)
        return buffer

    grpc_core = logging.getLogger(logs.GRPC_CORE_LOGGER)
    grpc_filters = grpc_core.filters[:]
    try:
        yield configure
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        grpc_core.filters[:] = grpc_filters


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def without_time(entry: dict) -> dict:
    return {key: value for key, value in entry.items() if key != "ts"}


def test_the_hot_path_writes_the_line_logging_writes(stderr):
    buffer = stderr()
    logger = logging.getLogger("leo.test.hot")
    assert isinstance(logs._only_handler(logger), logs.JsonHandler)  # the direct way, not logging's
    token = tracing.current_generation_id.set("3fa85f64-5717-4562-b3fc-2c963f66afa6")
    try:
        logger.info("rpc", extra=FIELDS)
        logs.info_line(logger, "rpc", FIELDS)
    finally:
        tracing.current_generation_id.reset(token)
    through_logging, direct = lines(buffer)
    assert without_time(direct) == without_time(through_logging)
    assert list(direct) == list(through_logging)  # the same fields in the same order
    assert without_time(direct) == {
        "level": "info",
        "service": "test",
        "logger": "leo.test.hot",
        "event": "rpc",
        "worker": 3,
        "generation_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        **FIELDS,
    }


def test_a_handler_or_filter_attached_sees_hot_lines_too(stderr):
    buffer = stderr()
    logger = logging.getLogger("leo.test.watched")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        logs.info_line(logger, "rpc", FIELDS)
    finally:
        logger.removeHandler(handler)
    assert [(record.getMessage(), record.code) for record in seen] == [("rpc", "OK")]  # type: ignore[attr-defined]
    assert [entry["event"] for entry in lines(buffer)] == ["rpc"]

    logger.addFilter(lambda record: False)
    try:
        logs.info_line(logger, "rpc", FIELDS)
    finally:
        logger.filters.clear()
    assert len(lines(buffer)) == 1


def test_hot_lines_follow_the_level(stderr):
    buffer = stderr()
    logger = logging.getLogger("leo.test.quiet")
    logger.setLevel(logging.WARNING)
    try:
        logs.info_line(logger, "rpc", FIELDS)
    finally:
        logger.setLevel(logging.NOTSET)
    assert lines(buffer) == []


@pytest.mark.parametrize(
    ("created", "text"),
    [
        (1796010768.367, "2026-11-30T03:52:48.367+00:00"),
        (1796010768.0, "2026-11-30T03:52:48.000+00:00"),
        (1796010769.999, "2026-11-30T03:52:49.999+00:00"),
        (1796010768.5, "2026-11-30T03:52:48.500+00:00"),
    ],
)
def test_timestamps_are_utc_to_the_millisecond_across_seconds(created, text):
    clock = logs._Clock()
    assert clock.timestamp(created - 1.25) != text  # another second formatted first
    assert clock.timestamp(created) == text
    assert datetime.fromisoformat(text) == datetime.fromtimestamp(int(created * 1000) / 1000, UTC)


# --- what gRPC's own library would write --------------------------------------

KEY = "leo_" + "k3y" * 14


async def call_with_authorization(value: str) -> int:
    """The gRPC status of one call to a real grpc.aio server, whose handler
    reads the key as the api_server does, sent with this authorization
    header (each character one byte)."""

    async def handle(request, context):
        if bearer_key(context.invocation_metadata()) is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no key")
        return b""

    server = grpc.aio.server()
    methods = {"Call": grpc.unary_unary_rpc_method_handler(handle)}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("leo.test.Svc", methods)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    headers = [("content-type", "application/grpc"), ("te", "trailers"), ("authorization", value)]
    frame = grpc_frame(empty_pb2.Empty())
    try:
        reply = await asyncio.to_thread(h2_request, port, "POST", "/leo.test.Svc/Call", headers, frame)
    finally:
        await server.stop(None)
    return reply.grpc_status


@pytest.mark.parametrize("suffix", ["\xe9", "\xa0", "\xc2"])
async def test_a_metadata_value_that_is_not_utf8_is_never_logged(stderr, suffix):
    """A key with a trailing Latin-1 byte (a no-break space pasted with it):
    gRPC's library writes the whole value at ERROR, with a traceback, then
    reads it as Latin-1. The line is dropped; the call is still refused."""
    buffer = stderr()
    logging.getLogger(logs.GRPC_CORE_LOGGER).filters.clear()  # the library alone
    assert await call_with_authorization(f"Bearer {KEY}{suffix}") == grpc.StatusCode.UNAUTHENTICATED.value[0]
    written = lines(buffer)
    assert KEY in buffer.getvalue() and {entry["level"] for entry in written} == {"error"}

    buffer.seek(0)
    buffer.truncate()
    stderr()  # as a service sets up its logging
    assert await call_with_authorization(f"Bearer {KEY}{suffix}") == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert buffer.getvalue() == ""


async def test_a_utf8_no_break_space_is_no_key_either(stderr):
    buffer = stderr()
    nbsp = "\u00a0".encode().decode("latin-1")  # its two UTF-8 bytes, one character each
    assert await call_with_authorization(f"Bearer {KEY}{nbsp}") == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert buffer.getvalue() == ""
