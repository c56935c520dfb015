"""One trace follows a generation through the real mesh: the client's
traceparent through Envoy, CreateGeneration, the dispatch (a child of the
create, through the traceparent stored with the row), the mock AI's start
of its job (sent in a StartGenerations batch, with its traceparent), the
callback server's recording of its result (sent in a CompleteGenerations
batch, with its traceparent) and its transaction, and the webhook; and a
dispatch made by another api_server process, after a restart. The spans go
to an OTLP collector the test runs; the log lines of a traced call carry
its ids. Spans within one api_server: tests/integration/test_telemetry.py."""

from __future__ import annotations

import secrets
import uuid

import pytest
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.clients import api_for, json_client
from tests.otlp_collector import Collector, Span
from tests.webhook_receiver import Receiver

CREATE = "leo.generation.v1.GenerationService/CreateGeneration"
START = "start generation"  # the mock AI's span of one job of a StartGenerations call
COMPLETE = "complete generation"  # the callback_server's span of one result of a CompleteGenerations call

TRACED = {
    "OTEL_BSP_SCHEDULE_DELAY": "100",
    "MOCK_AI_MIN_DELAY_S": "0.2",
    "MOCK_AI_MAX_DELAY_S": "0.4",
    "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
    "WEBHOOK_POLL_INTERVAL_S": "0.1",
    "DISPATCH_POLL_INTERVAL_S": "0.1",
    # While the AI is away (the restart test), dispatches wait for it briefly
    # and are tried again, never given up.
    "DISPATCH_RPC_TIMEOUT_S": "1",
    "DISPATCH_BACKOFF_BASE_S": "0.1",
    "DISPATCH_BACKOFF_CAP_S": "0.2",
    "DISPATCH_MAX_ATTEMPTS": "100",
}


@pytest.fixture(scope="module")
def collector():
    with Collector() as running:
        yield running


@pytest.fixture(scope="module")
def mesh(collector, make_mesh):
    # The collector first: its teardown then comes after the mesh's, whose
    # processes send their last spans as they stop (to a collector that is gone, they wait).
    return make_mesh(
        env={**TRACED, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "ENVOY_OTLP_ENDPOINT": collector.endpoint}
    )


def about(spans: list[Span], generation_id: str) -> dict[str, list[Span]]:
    """The spans of one generation by name (its transactions' too: the children of its spans)."""
    ids = {span.span_id for span in spans if span.generation_id == generation_id}
    found: dict[str, list[Span]] = {}
    for span in spans:
        if span.generation_id == generation_id or span.parent_id in ids:
            found.setdefault(span.name, []).append(span)
    return found


def only(spans: dict[str, list[Span]], name: str) -> Span:
    (span,) = spans[name]
    return span


def test_one_trace_follows_a_generation_through_every_hop(mesh, collector):
    key = mesh.create_api_key("traced")
    client_trace, client_span = secrets.token_hex(16), secrets.token_hex(8)
    with json_client(mesh, key) as http, Receiver() as receiver:
        http.post("/v1/webhookSecret:rotate", json={}).raise_for_status()
        created = http.post(
            "/v1/generations",
            json={"prompt": "follow me", "webhookUrl": receiver.url()},
            headers={"traceparent": f"00-{client_trace}-{client_span}-01"},
        )
        assert created.status_code == 200, created.text
        generation_id = created.json()["generation"]["generationId"]
        names = {CREATE, "create transaction", "dispatch", START, "deliver result", COMPLETE}
        names |= {"complete transaction", "webhook POST"}
        spans = about(
            collector.wait_spans("every span of the generation", lambda s: names <= about(s, generation_id).keys()),
            generation_id,
        )
    assert {span.trace_id for group in spans.values() for span in group} == {client_trace}

    # Envoy reports its spans every few seconds.
    (edge,) = [
        span
        for span in collector.wait_spans(
            "Envoy's span", lambda s: any(span.service == "envoy" and span.trace_id == client_trace for span in s)
        )
        if span.service == "envoy" and span.trace_id == client_trace
    ]
    create = only(spans, CREATE)
    assert edge.parent_id == client_span and edge.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert (create.service, create.parent_id, create.kind) == (
        "api-server",
        edge.span_id,
        trace_pb2.Span.SPAN_KIND_SERVER,
    )
    assert only(spans, "create transaction").parent_id == create.span_id

    # The asynchronous hop: the dispatch continues the create's span, stored with the row.
    dispatch = only(spans, "dispatch")
    assert (dispatch.service, dispatch.parent_id) == ("api-server", create.span_id)
    assert dispatch.attributes["rpc.grpc.status_code"] == "OK" and dispatch.attributes["leo.dispatch.attempt"] == 1
    start = only(spans, START)
    assert (start.service, start.parent_id) == ("mock-ai-server", dispatch.span_id)
    deliver = only(spans, "deliver result")
    assert (deliver.service, deliver.parent_id) == ("mock-ai-server", start.span_id)
    complete = only(spans, COMPLETE)
    assert (complete.service, complete.parent_id) == ("callback-server", deliver.span_id)
    assert only(spans, "complete transaction").parent_id == complete.span_id
    webhook = only(spans, "webhook POST")
    assert (webhook.service, webhook.parent_id) == ("api-server", create.span_id)
    assert webhook.attributes["leo.webhook.outcome"] == "delivered"
    assert not any(span.error for group in spans.values() for span in group)

    # The log lines written inside the traced calls carry their ids.
    rpc_line = next(
        r
        for r in mesh.api_servers[0].log_records()
        if r.get("event") == "rpc" and r.get("method") == "/" + CREATE and r.get("generation_id") == generation_id
    )
    assert (rpc_line["trace_id"], rpc_line["span_id"]) == (client_trace, create.span_id)
    completion = next(
        r
        for r in mesh.callback_server.log_records()
        if r.get("event") == "completion" and r.get("generation_id") == generation_id
    )
    assert (completion["trace_id"], completion["span_id"]) == (client_trace, complete.span_id)


def test_envoy_s_span_records_the_url_without_its_query(mesh, collector):
    """Envoy's span named the whole URL (http.url): a signed link's
    signature or a key sent as a query parameter went to the trace store."""
    key = mesh.create_api_key("traced-query")
    signature, token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    paths = [f"/v1/generations/{uuid.uuid4()}/assets/0", f"/v1/generations/{uuid.uuid4()}"]
    with json_client(mesh, key) as http:
        assert http.get(f"{paths[0]}?expires=1&signature={signature}").status_code == 403
        assert http.get(f"{paths[1]}?access_token={token}").status_code == 404

    def by_path(spans: list[Span]) -> dict[str, Span]:
        urls = {span.attributes.get("http.url"): span for span in spans if span.service == "envoy"}
        return {path: span for path in paths for url, span in urls.items() if str(url).split("?")[0].endswith(path)}

    collector.wait_spans("Envoy's spans of both requests", lambda spans: len(by_path(spans)) == 2)
    text = repr(collector.spans())
    assert signature not in text and token not in text
    assert [span.attributes["http.url"] for span in by_path(collector.spans()).values()] == [
        mesh.envoy_url + path for path in paths
    ]


def test_a_dispatch_after_an_api_server_restart_joins_the_create_trace(mesh, collector):
    """Last: it restarts the mock AI and the api_server."""
    (server,) = mesh.api_servers
    api = api_for(mesh, "restarted")
    mesh.mock_ai.stop()  # no dispatch can be accepted before the restart
    generation_id = api.create("across a restart").generation_id
    assert server.stop() == 0
    mesh.start_process(mesh.mock_ai)
    mesh.start_process(server)
    api.wait_final(generation_id)

    def accepted(spans: list[Span]) -> list[Span]:
        return [
            span
            for span in spans
            if span.name == "dispatch"
            and span.generation_id == generation_id
            and span.attributes["rpc.grpc.status_code"] == "OK"
        ]

    (dispatch,) = accepted(collector.wait_spans("the accepted dispatch", accepted))
    create = only(about(collector.spans(), generation_id), CREATE)
    assert dispatch.pid != create.pid  # another process, after the restart
    assert (dispatch.trace_id, dispatch.parent_id) == (create.trace_id, create.span_id)
