"""T: what tracing and metric scrapes cost a create. P1's gRPC create on
two meshes back to back: without tracing and unscraped ("echo" column), and
with tracing as the production overlay samples it (parent-based, 10% of
traces; unsampled spans are still made and propagated) sent to an OTLP sink
while Prometheus-like scrapes read all three /metrics every second ("ours"
column). Both record their metrics: that is not a switch. The ratio is the
price; it must stay above 0.9 (under 10%). SAMPLER_ARG=1.0 measures every
trace sampled (docs/performance.md has that figure too)."""

from __future__ import annotations

import dataclasses
import threading
import urllib.request
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench import stacks, throughput
from bench.calls import CREATE, grpc_load
from bench.params import Params
from bench.report import Row

SCRAPE_INTERVAL_S = 1.0
# deploy/k8s/overlays/production: OTEL_TRACES_SAMPLER_ARG.
SAMPLER_ARG = "0.1"


class OtlpSink(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that counts the spans it is sent."""

    def __init__(self) -> None:
        self.spans = 0
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self._port = self._server.add_insecure_port("127.0.0.1:0")

    def Export(self, request, context):
        count = sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)
        with self._lock:
            self.spans += count
        return trace_service_pb2.ExportTraceServiceResponse()

    @property
    def env(self) -> dict[str, str]:
        """What makes a mesh send every span here."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self._port}",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": SAMPLER_ARG,
        }

    def __enter__(self) -> OtlpSink:
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop(None)


class Scraper:
    """Reads each of the mesh's /metrics every SCRAPE_INTERVAL_S, as Prometheus would."""

    def __init__(self, target: stacks.MeshTarget) -> None:
        mesh = target.mesh
        self._urls = [mesh.metrics_url(process) for process in (*mesh.api_servers, mesh.mock_ai, mesh.callback_server)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.scrapes = 0

    def _run(self) -> None:
        while not self._stop.wait(SCRAPE_INTERVAL_S):
            for url in self._urls:
                try:
                    with urllib.request.urlopen(url, timeout=5) as reply:
                        reply.read()
                    self.scrapes += 1
                except OSError:
                    pass

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def telemetry_cost(plain: stacks.MeshTarget, traced: stacks.MeshTarget, sink: OtlpSink, params: Params) -> Row:
    load = throughput.Load("T", "", "CreateGeneration", grpc_load("CreateGeneration", CREATE), counts_rows=True)
    with Scraper(traced) as scraper:
        row = throughput.compare(load, plain, traced, dataclasses.replace(params, repeats=params.mesh_repeats))
    row.figure = (
        f"tracing (sampled {float(SAMPLER_ARG):.0%}) + /metrics scraped 1/s: gRPC create without / with "
        f"({sink.spans:,} spans received, {scraper.scrapes:,} scrapes)"
    )
    return row
