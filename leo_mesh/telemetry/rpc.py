"""What the server interceptor (leo_mesh.grpc_server.RpcInterceptor) records
for each RPC: the gRPC server metrics, and its SERVER span when tracing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leo_mesh import metrics
from leo_mesh.telemetry import tracing


@dataclass(frozen=True, slots=True)
class _MethodMetrics:
    """One method's metric children, looked up once (labels() takes a lock)."""

    service: str
    method: str
    started: Any
    latency: Any
    handled: dict[str, Any]  # by status code, filled as codes occur

    def handled_with(self, code_name: str) -> Any:
        child = self.handled.get(code_name)
        if child is None:
            child = self.handled[code_name] = metrics.RPC_HANDLED.labels(self.service, self.method, code_name)
        return child


_by_method: dict[str, _MethodMetrics] = {}


def _method_metrics(full_method: str) -> _MethodMetrics:
    found = _by_method.get(full_method)
    if found is None:
        service, _, method = full_method.lstrip("/").rpartition("/")
        found = _by_method[full_method] = _MethodMetrics(
            service,
            method,
            metrics.RPC_STARTED.labels(service, method),
            metrics.RPC_LATENCY.labels(service, method),
            {},
        )
    return found


class RpcRecord:
    """One RPC from its start (counted; its span started and made current)
    to its status (counted, timed; its span ended)."""

    __slots__ = ("_metrics", "_span", "_token")

    def __init__(self, full_method: str, context: Any) -> None:
        """`context`: the call's grpc.aio.ServicerContext (its metadata may continue a trace)."""
        self._metrics = _method_metrics(full_method)
        self._metrics.started.inc()
        self._span = self._token = None
        if tracing.tracer is not None:
            self._span = tracing.server_span(full_method, context.invocation_metadata())
            self._token = tracing.attach(self._span)

    def finish(self, code_name: str, seconds: float, details: str | None, *, detach: bool = True) -> None:
        """`detach=False` when finishing in another context than the start
        (an abandoned stream closed by the garbage collector)."""
        found = self._metrics
        found.handled_with(code_name).inc()
        found.latency.observe(seconds)
        if self._span is not None:
            tracing.end_server_span(self._span, code_name, details)
            if detach:
                tracing.detach(self._token)
