"""OpenTelemetry traces: one trace follows a generation across the mesh.

Off unless an OTLP endpoint is configured (TracingSettings, the standard
OTEL_* variables): then `tracer` is None and every helper here returns at
once, so tracing costs a None check. On, spans go to the OTLP/gRPC exporter
in batches, sampled as OTEL_TRACES_SAMPLER says (default: parent-based,
always on).

What makes one trace of a generation:
- gRPC calls carry W3C `traceparent` metadata: servers continue the
  caller's trace (`server_span`), callers send theirs (`outgoing_metadata`);
- the create's span context is stored with the row (`traceparent()`), and
  each later step run by an outbox loop — a dispatch, a webhook delivery —
  is a child of it (`span(..., parent=stored)`), whichever process or
  replica runs it, before or after a restart;
- spans about one generation carry `leo.generation_id` (`about_generation`),
  which also puts it on the log lines of the call (leo_mesh.logs).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator, Sequence

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from leo_mesh.settings import TracingSettings

GENERATION_ID = "leo.generation_id"
INSTRUMENTATION = "leo_mesh"

# The tracer of this process; None: tracing is off.
tracer: trace.Tracer | None = None
_provider: trace.TracerProvider | None = None

# The generation the current call or task is about (for spans and log lines).
current_generation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("generation_id", default=None)


def configure(service_name: str, settings: TracingSettings | None = None) -> bool:
    """Trace if the environment configures an OTLP endpoint; returns whether it does.
    `service_name` is the default of OTEL_SERVICE_NAME."""
    settings = settings or TracingSettings()
    if not settings.enabled:
        return False
    # Imported only when tracing: a process that does not trace loads no SDK.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import PROCESS_PID, SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: settings.otel_service_name or service_name, PROCESS_PID: os.getpid()})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)
    return True


def install(provider: trace.TracerProvider | None) -> None:
    """Trace with `provider` from now on (None: stop tracing). configure() and tests call it."""
    global tracer, _provider
    _provider = provider
    tracer = provider.get_tracer(INSTRUMENTATION) if provider is not None else None


def shutdown() -> None:
    """Send the spans still buffered and stop tracing (a process's last step)."""
    provider = _provider
    install(None)
    if provider is not None and hasattr(provider, "shutdown"):
        provider.shutdown()


# --- spans ---


def server_span(method: str, metadata: Sequence[tuple[str, str | bytes]] | None) -> trace.Span:
    """A started SERVER span of an RPC (`method`: "/package.Service/Method"),
    continuing the caller's trace if its metadata has one. Only when tracing."""
    assert tracer is not None
    carrier = {key: value for key, value in metadata or () if isinstance(value, str)}
    service, _, name = method.lstrip("/").rpartition("/")
    return tracer.start_span(
        method.lstrip("/"),
        context=propagate.extract(carrier),
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
    )


def set_code(span: trace.Span | None, code_name: str, details: str | None = None) -> None:
    """A gRPC call's status on its span (None: not tracing)."""
    if span is None:
        return
    span.set_attribute("rpc.grpc.status_code", code_name)
    if code_name != "OK":
        span.set_status(Status(StatusCode.ERROR, f"{code_name}: {details or ''}"))


def end_server_span(span: trace.Span, code_name: str, details: str | None) -> None:
    set_code(span, code_name, details)
    span.end()


def attach(span: trace.Span) -> object:
    """Make `span` the current one; returns what detach() needs."""
    return otel_context.attach(trace.set_span_in_context(span))


def detach(token: object) -> None:
    otel_context.detach(token)  # type: ignore[arg-type]


@contextlib.contextmanager
def span(
    name: str,
    *,
    parent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    generation_id: str | None = None,
    attributes: dict[str, str | int] | None = None,
) -> Iterator[trace.Span | None]:
    """A span around the block, current inside it (None when not tracing).
    `parent`: a stored traceparent to continue (else the current span's trace)."""
    if tracer is None:
        yield None
        return
    context = propagate.extract({"traceparent": parent}) if parent else None
    with tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes) as current:
        if generation_id is not None:
            current.set_attribute(GENERATION_ID, generation_id)
        yield current


def about_generation(generation_id: str) -> None:
    """The current call or task is about this generation: its span gets
    `leo.generation_id` and its log lines `generation_id`."""
    current_generation_id.set(generation_id)
    if tracer is not None:
        trace.get_current_span().set_attribute(GENERATION_ID, generation_id)


# --- propagation ---


def traceparent() -> str | None:
    """The current span as a W3C traceparent, to store with a row (None: no span)."""
    if tracer is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def outgoing_metadata() -> list[tuple[str, str]]:
    """Metadata that continues the current trace in a gRPC call ([] when not tracing)."""
    if tracer is None:
        return []
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return list(carrier.items())


# --- log lines ---


def add_log_fields(entry: dict[str, object]) -> None:
    """trace_id, span_id and generation_id of the current call, those known, into a log entry."""
    if tracer is not None:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
    generation_id = current_generation_id.get()
    if generation_id is not None:
        entry["generation_id"] = generation_id
