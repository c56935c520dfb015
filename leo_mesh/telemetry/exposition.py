"""Serving the metrics (Prometheus text format at /metrics) on a port of their own.

A single process serves its own registry (the process-wide one, and the
collectors given to its endpoint: the api_server's queue gauges, read at
scrape time). A service run as worker
processes (leo_mesh.workers) uses prometheus_client's multiprocess mode:
the supervising parent makes a directory and names it in
PROMETHEUS_MULTIPROC_DIR before it starts the workers, so their metrics are
kept in files there; the parent alone serves the port, adding up the files
of all workers (each gauge as its `multiprocess_mode` in leo_mesh.metrics
says), forgets a dead worker's gauges, and removes the directory at the end; collectors that read at scrape time
run in the parent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger("leo.metrics")

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class _Everything(Collector):
    """All of a registry's metrics, as one collector of another registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


class MetricsEndpoint:
    """/metrics of `registry`, and of `collectors`, on host:port (0: a free
    port), in a thread. The collectors are this endpoint's alone: two in one
    process (tests) do not serve each other's."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry = REGISTRY, *, collectors: Sequence[Collector] = ()
    ) -> None:
        self._host = host
        self._port = port
        if collectors:
            served = CollectorRegistry()
            served.register(_Everything(registry))
            for collector in collectors:
                served.register(collector)
            registry = served
        self._registry = registry
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (once started)."""
        return self._server.server_port if self._server is not None else self._port

    def start(self) -> MetricsEndpoint:
        self._server, self._thread = start_http_server(self._port, addr=self._host, registry=self._registry)
        log.info("metrics listening", extra={"address": f"{self._host}:{self.port}"})
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class WorkerMetrics:
    """The parent's side of multiprocess mode (see the module's docstring)."""

    def __init__(self, host: str, port: int, collectors: Sequence[Collector] = ()) -> None:
        self.directory = tempfile.mkdtemp(prefix="leo-metrics-")
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry, path=self.directory)
        for collector in collectors:
            registry.register(collector)
        self.endpoint = MetricsEndpoint(host, port, registry)

    def worker_exited(self, pid: int) -> None:
        """Forget the live gauges of a worker that is gone (its counters stay in the sums)."""
        prometheus_multiprocess.mark_process_dead(pid, self.directory)


@contextlib.contextmanager
def worker_metrics(host: str, port: int, collectors: Sequence[Collector] = ()) -> Iterator[WorkerMetrics]:
    """Multiprocess mode for the workers started inside the block (spawned
    workers inherit the environment, and read it when they import
    prometheus_client); `collectors` are served beside their sums."""
    metrics = WorkerMetrics(host, port, collectors)
    os.environ.update({MULTIPROC_DIR_VARIABLE: metrics.directory})
    try:
        metrics.endpoint.start()
        yield metrics
    finally:
        metrics.endpoint.stop()
        os.environ.pop(MULTIPROC_DIR_VARIABLE, None)
        shutil.rmtree(metrics.directory, ignore_errors=True)
