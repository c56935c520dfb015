"""Metrics and traces of an api_server in process (a stub AI; dispatch
rounds driven by the test): the backlog and pool gauges as the database and
the pool stand, missed deadlines, the spans of a create and its dispatch,
and the trace ids on the log lines written inside them."""

from __future__ import annotations

import asyncio
import secrets

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from leo.generation.v1 import generation_pb2
from leo_mesh.telemetry import tracing
from tests import rows
from tests.inprocess import Client, FakeAi, api_server, channel_to, new_key
from tests.log_lines import captured_lines
from tests.scrape import Scrape


def scrape(app) -> Scrape:
    return Scrape(f"http://127.0.0.1:{app.metrics.port}/metrics")


async def test_the_backlog_gauges_read_the_database(database_url):
    ai = FakeAi()
    # The deadline must outlast the reads right after the dispatch (50 ms did
    # not, on a busy machine), and is then waited out.
    async with api_server(database_url, ai=ai, background=False, completion_deadline_s=1.5) as app:
        client = Client(channel_to(app), await new_key(app))
        for _ in range(2):
            await client.create()
        await app.gauges.read_backlog()
        before = scrape(app)
        assert before.value("leo_dispatch_backlog_due") == 2
        assert before.value("leo_dispatch_in_flight") == 0
        assert before.value("leo_dispatch_oldest_due_age_seconds") > 0
        assert before.value("leo_generations_pending_oldest_age_seconds") > 0

        await app.dispatcher.round()  # both accepted: waiting for their callbacks
        await app.gauges.read_backlog()
        dispatched = scrape(app)
        assert dispatched.value("leo_dispatch_backlog_due") == 0
        assert dispatched.value("leo_dispatch_in_flight") == 2
        assert dispatched.value("leo_dispatch_oldest_due_age_seconds") == 0

        # No callback comes: past the deadline both are due again, and counted as missed.
        timeouts = dispatched.value("leo_dispatch_timeouts_total")
        while True:
            await app.gauges.read_backlog()
            if scrape(app).value("leo_dispatch_backlog_due") == 2:
                break
            await asyncio.sleep(0.02)
        await app.dispatcher.round()  # drops them from the worker; the next round sends them again
        assert scrape(app).value("leo_dispatch_timeouts_total") == timeouts + 2
        await app.dispatcher.round()
        assert len(ai.requests) == 4


async def test_generations_waiting_for_a_free_slot_are_queued_not_due(database_url):
    """A full pool is the queue working, not the dispatch lagging: the
    dispatch alerts read `due`, the queue's own gauges show the wait."""
    await asyncio.to_thread(rows.add_worker, database_url, slots=1, prefetch=0, address=rows.FAKE_WORKER_ADDRESS)
    async with api_server(database_url, background=False, fake_worker=False) as app:
        client = Client(channel_to(app), await new_key(app))
        for _ in range(3):
            await client.create()
        await app.gauges.read_backlog()
        assert scrape(app).value("leo_dispatch_backlog_due") == 3
        await app.dispatcher.round()
        await app.gauges.read_backlog()
        full = scrape(app)
        assert full.value("leo_dispatch_in_flight") == 1
        assert full.value("leo_dispatch_backlog_due") == 0
        assert full.value("leo_dispatch_oldest_due_age_seconds") == 0
        assert full.value("leo_generations_pending_oldest_age_seconds") > 0


async def test_generations_are_counted_under_their_own_kind(database_url):
    async with api_server(database_url, background=False) as app:
        client = Client(channel_to(app), await new_key(app))
        before = scrape(app)
        video = await client.create(model=generation_pb2.MODEL_SD, kind=generation_pb2.KIND_VIDEO)
        await client.create(model=generation_pb2.MODEL_SD)
        await client.cancel(video.generation_id)
        after = scrape(app)
        for kind in ("IMAGE", "VIDEO"):
            created = {"model": "SD", "kind": kind}
            assert after.value("leo_generations_created_total", **created) == (
                before.value("leo_generations_created_total", **created) + 1
            )
        cancelled = {"status": "CANCELLED", "model": "SD"}
        assert after.value("leo_generations_finished_total", **cancelled, kind="VIDEO") == (
            before.value("leo_generations_finished_total", **cancelled, kind="VIDEO") + 1
        )
        assert after.value("leo_generations_finished_total", **cancelled, kind="IMAGE") == (
            before.value("leo_generations_finished_total", **cancelled, kind="IMAGE")
        )


async def test_the_pool_gauges_count_connections_in_use(database_url):
    async with api_server(database_url, background=False) as app:
        # Connections the pool is still opening count as in use until they are ready.
        while app.gauges.sample_pool() or scrape(app).value("leo_db_pool_connections_in_use"):
            await asyncio.sleep(0.02)
        async with app.db.connection():
            app.gauges.sample_pool()
            assert scrape(app).value("leo_db_pool_connections_in_use") == 1
        app.gauges.sample_pool()
        assert scrape(app).value("leo_db_pool_connections_in_use") == 0
        assert scrape(app).value("leo_db_pool_requests_waiting") == 0


async def test_a_refused_dispatch_counts_as_an_attempt_and_a_retry_by_its_code(database_url):
    ai = FakeAi()
    async with api_server(database_url, ai=ai, background=False) as app:
        client = Client(channel_to(app), await new_key(app))
        before = scrape(app)
        await client.create()
        ai.answer = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())
        await app.dispatcher.round()
        after = scrape(app)
    for name in ("leo_dispatch_attempts_total", "leo_dispatch_retries_total"):
        assert after.value(name, grpc_code="UNAVAILABLE") == before.value(name, grpc_code="UNAVAILABLE") + 1
        assert after.value(name) == before.value(name) + 1


@pytest.fixture
def spans():
    """Tracing on, into memory, for one test."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)


@pytest.fixture
def lines():
    with captured_lines() as captured:
        yield captured


async def test_a_create_and_its_dispatch_are_one_trace_and_their_log_lines_say_so(database_url, spans, lines):
    ai = FakeAi()
    async with api_server(database_url, ai=ai, background=False) as app:
        client = Client(channel_to(app), await new_key(app))
        caller_trace, caller_span = secrets.token_hex(16), secrets.token_hex(8)
        request = generation_pb2.CreateGenerationRequest(prompt="traced")
        metadata = (*client.metadata, ("traceparent", f"00-{caller_trace}-{caller_span}-01"))
        created = (await client.stub.CreateGeneration(request, metadata=metadata, timeout=10)).generation
        await app.dispatcher.round()

    finished = {span.name: span for span in spans.get_finished_spans()}
    create = finished["leo.generation.v1.GenerationService/CreateGeneration"]
    dispatch = finished["dispatch"]
    assert format(create.context.trace_id, "032x") == caller_trace
    assert format(create.parent.span_id, "016x") == caller_span and create.kind is SpanKind.SERVER
    assert create.attributes["leo.generation_id"] == created.generation_id
    assert create.attributes["rpc.grpc.status_code"] == "OK"
    assert finished["create transaction"].parent.span_id == create.context.span_id
    # The dispatch continues the create's span, read back from the row.
    assert dispatch.context.trace_id == create.context.trace_id
    assert dispatch.parent.span_id == create.context.span_id
    assert dispatch.attributes["leo.generation_id"] == created.generation_id
    (sent,) = ai.requests
    assert sent.generation_id == created.generation_id

    def line(event: str) -> dict:
        (found,) = [entry for entry in lines if entry["event"] == event and entry.get("generation_id")]
        return found

    rpc = line("rpc")
    assert (rpc["trace_id"], rpc["span_id"]) == (caller_trace, format(create.context.span_id, "016x"))
    assert rpc["generation_id"] == created.generation_id
    dispatched = line("dispatched")
    assert (dispatched["trace_id"], dispatched["span_id"]) == (caller_trace, format(dispatch.context.span_id, "016x"))


async def test_without_tracing_no_span_is_made_and_lines_have_no_trace_ids(database_url, lines):
    assert tracing.tracer is None
    async with api_server(database_url, background=False) as app:
        client = Client(channel_to(app), await new_key(app))
        metadata = (*client.metadata, ("traceparent", f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"))
        request = generation_pb2.CreateGenerationRequest(prompt="untraced")
        created = (await client.stub.CreateGeneration(request, metadata=metadata, timeout=10)).generation
    (rpc,) = [entry for entry in lines if entry["event"] == "rpc" and entry["method"].endswith("CreateGeneration")]
    assert "trace_id" not in rpc and rpc["generation_id"] == created.generation_id
