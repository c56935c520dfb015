"""A real OTLP/gRPC trace collector for tests: the OpenTelemetry trace
service (from opentelemetry-proto) on 127.0.0.1, keeping every span it receives."""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.clients import wait_for


def _value(value: common_pb2.AnyValue) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@dataclass(frozen=True)
class Span:
    service: str
    pid: int | None
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    attributes: dict[str, object]
    links: tuple[tuple[str, str], ...]  # (trace id, span id)
    error: bool

    @property
    def generation_id(self) -> object:
        return self.attributes.get("leo.generation_id")


def _spans(request: trace_service_pb2.ExportTraceServiceRequest) -> list[Span]:
    found = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.append(
                    Span(
                        service=str(resource.get("service.name")),
                        pid=resource.get("process.pid"),  # type: ignore[arg-type]
                        name=span.name,
                        kind=span.kind,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                        error=span.status.code == trace_pb2.Status.STATUS_CODE_ERROR,
                    )
                )
    return found


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def Export(self, request, context):
        with self._lock:
            self._spans.extend(_spans(request))
        return trace_service_pb2.ExportTraceServiceResponse()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def wait_spans(self, what: str, check, timeout_s: float = 30.0) -> list[Span]:
        """The spans, once `check(spans)` is true of them."""

        def checked() -> list[Span] | None:
            spans = self.spans()
            return spans if check(spans) else None

        return wait_for(checked, timeout_s=timeout_s, what=what)

    def __enter__(self) -> Collector:
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop(None)
