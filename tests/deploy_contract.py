"""What compose.yaml and deploy/ must agree with: the services' settings,
names, ports and shutdown, the metric catalog, and the stats a real Envoy
exports. Shared by tests/unit/test_compose.py and tests/unit/test_deploy_*.py.
"""

from __future__ import annotations

import enum
import functools
import inspect
import itertools
import re
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import promql_parser
from prometheus_client.metrics import MetricWrapperBase
from pydantic_settings import BaseSettings

import api_server.settings
import callback_server.settings
import leo_mesh.metrics
import mock_ai_server.settings
from api_server.settings import WebhookSettings
from devstack import envoy
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from leo.ai.v1 import ai_pb2
from leo.callback.v1 import callback_pb2
from leo.generation.v1 import generation_pb2
from leo_mesh import envoy_config, grpc_server
from leo_mesh.media.settings import MediaSettings
from leo_mesh.rules import Kind, Model
from leo_mesh.rules import Status as GenerationStatus
from leo_mesh.scheduling import Priority
from leo_mesh.settings import TracingSettings
from tests import settings_catalog

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"

# The standard OpenTelemetry SDK variables the deployments set: tracing is
# configured by these alone (unset: off).
OTEL_VARIABLES = frozenset(
    {
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_SERVICE_NAME",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_RESOURCE_ATTRIBUTES",
    }
)


def env_names(settings_class: type[BaseSettings]) -> set[str]:
    return set(settings_catalog.env_names(settings_class))


@dataclass(frozen=True)
class Service:
    module: str  # `python -m` module, and its compose service name
    name: str  # its Kubernetes name, Prometheus job and OTEL_SERVICE_NAME
    settings: tuple[type[BaseSettings], ...]  # the first has the ports
    port_field: str
    metrics_port_field: str
    grpc_service: str  # the service it reports health for, beside ""
    # Its Kubernetes Deployments and compose services, when not one named as above (pools of workers).
    pools: tuple[str, ...] = ()
    compose_pools: tuple[str, ...] = ()

    @property
    def deployments(self) -> tuple[str, ...]:
        return self.pools or (self.name,)

    @property
    def compose_services(self) -> tuple[str, ...]:
        return self.compose_pools or (self.module,)

    @property
    def port_var(self) -> str:
        return self.port_field.upper()

    @property
    def default_port(self) -> int:
        return self.settings[0].model_fields[self.port_field].default

    @property
    def metrics_port_var(self) -> str:
        return self.metrics_port_field.upper()

    @property
    def metrics_port(self) -> int:
        return self.settings[0].model_fields[self.metrics_port_field].default

    @property
    def uses_database(self) -> bool:
        return "database_url" in self.settings[0].model_fields

    def variables_read(self) -> set[str]:
        """Every environment variable the process reads (tracing and metrics included)."""
        return set().union(*map(env_names, self.settings)) | env_names(TracingSettings) | OTEL_VARIABLES


SERVICES = (
    Service(
        "api_server",
        "api-server",
        (api_server.settings.Settings, WebhookSettings, MediaSettings),
        "api_server_port",
        "api_server_metrics_port",
        generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name,
    ),
    Service(
        "mock_ai_server",
        "mock-ai-server",
        (mock_ai_server.settings.Settings, MediaSettings),
        "mock_ai_port",
        "mock_ai_metrics_port",
        ai_pb2.DESCRIPTOR.services_by_name["AIService"].full_name,
        pools=("mock-ai-image", "mock-ai-video"),
        compose_pools=("mock_ai_image", "mock_ai_video"),
    ),
    Service(
        "callback_server",
        "callback-server",
        (callback_server.settings.Settings, MediaSettings),
        "callback_server_port",
        "callback_server_metrics_port",
        callback_pb2.DESCRIPTOR.services_by_name["CallbackService"].full_name,
    ),
)
BY_MODULE = {service.module: service for service in SERVICES}
BY_NAME = {service.name: service for service in SERVICES}
# Each Kubernetes Deployment and compose service of ours, with the service it runs.
BY_DEPLOYMENT = {deployment: service for service in SERVICES for deployment in service.deployments}
BY_COMPOSE_SERVICE = {name: service for service in SERVICES for name in service.compose_services}

ENVOY_JOB = "envoy"
JOBS = frozenset({*BY_NAME, ENVOY_JOB})
ENVOY_ADMIN_PORT: int = envoy_config.EnvoySettings.model_fields["envoy_admin_port"].default
ENVOY_LISTEN_PORT: int = envoy_config.EnvoySettings.model_fields["envoy_listen_port"].default

# --- Shutdown (for terminationGracePeriodSeconds) ---
# After SIGTERM each server lets in-flight calls finish for this long.
GRPC_GRACE_S: float = inspect.signature(grpc_server.GrpcApp).parameters["grace_s"].default


def api_server_last_rounds_s() -> float:
    """After the server stopped, ApiServer.stop() waits for the dispatcher's
    and the webhook sender's last rounds together, up to
    max(DISPATCH_RPC_TIMEOUT_S, WEBHOOK_TIMEOUT_S) + 4 s."""
    return max(api_server.settings.Settings().dispatch_rpc_timeout_s, WebhookSettings().timeout_s) + 4


# --- The metric catalog (leo_mesh/metrics.py) ---
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})
PROMETHEUS_SERIES = frozenset({"up"})


@dataclass(frozen=True)
class CatalogMetric:
    family: str
    kind: str
    labels: frozenset[str]
    documentation: str


@functools.cache
def catalog() -> dict[str, CatalogMetric]:
    """Every series name the services export, mapped to its metric (those
    kept by prometheus_client and those read at each scrape)."""
    series = {}
    for metric in vars(leo_mesh.metrics).values():
        if isinstance(metric, leo_mesh.metrics.ScrapedGauge):
            series[metric.name] = CatalogMetric(metric.name, "gauge", frozenset(metric.labels), metric.documentation)
            continue
        if not isinstance(metric, MetricWrapperBase):
            continue
        (family,) = metric.describe()
        # prometheus_client has no public accessor for a metric's label names.
        labels = frozenset(metric._labelnames) | ({"le"} if family.type == "histogram" else set())
        info = CatalogMetric(family.name, family.type, labels, family.documentation)
        for suffix in SAMPLE_SUFFIXES[family.type]:
            series[family.name + suffix] = info
    return series


def documented_values(metric: CatalogMetric) -> set[str]:
    """The label values a help text lists after its last colon ("by outcome: a, b, c.")."""
    listed = metric.documentation.rsplit(":", 1)[1]
    return {value.strip(" .") for value in listed.split(",")}


def pool_names(members: type[enum.Enum]) -> set[str]:
    """What a worker pool's `models` or `kinds` label may be: names of some
    of `members`, sorted and comma-separated."""
    names = sorted(member.value for member in members)
    return {",".join(chosen) for count in range(1, len(names) + 1) for chosen in itertools.combinations(names, count)}


def known_label_values(label: str, metric: CatalogMetric) -> set[str] | None:
    """The values a label of ours may take, or None where any value is fine."""
    if label == "grpc_code":
        return {code.name for code in grpc.StatusCode}
    if label == "status":
        return {status.value for status in GenerationStatus}
    if label in {"outcome", "state"}:
        return documented_values(metric)
    if label == "model":
        return {model.value for model in Model}
    if label == "kind":
        return {kind.value for kind in Kind}
    if label == "priority":
        return {priority.name for priority in Priority}
    if label == "models":
        return pool_names(Model)
    if label == "kinds":
        return pool_names(Kind)
    if label == "job":
        return set(JOBS)
    return None


# --- Envoy's own stats ---
@functools.cache
def envoy_series() -> frozenset[str]:
    """The series names a real Envoy (our config) serves at /stats/prometheus."""
    listen, admin, upstream = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = envoy_config.write_config(
            Path(tmp) / "envoy.yaml",
            envoy_config.EnvoySettings(envoy_listen_port=listen, envoy_admin_port=admin, api_server_port=upstream),
        )
        proxy = ManagedProcess("envoy", envoy.command(config), env={}, log_path=Path(tmp) / "envoy.log").start()
        try:
            text = read_when_up(f"http://127.0.0.1:{admin}/stats/prometheus", proxy)
        finally:
            proxy.stop()
    # Names as served: prometheus_client's parser would add _total to Envoy's counters.
    return frozenset(re.findall(r"^([a-zA-Z_:][\w:]*)[{ ]", text, re.M))


def read_when_up(url: str, process: ManagedProcess, timeout_s: float = 60.0) -> str:
    """GET url once the process answers it (a bounded wait for start-up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return reply.read().decode()
        except OSError:
            if not process.running() or time.monotonic() > deadline:
                raise RuntimeError(f"{process.name} did not answer {url}:\n{process.log_text()}") from None
            time.sleep(0.1)


def metric_allowed(name: str) -> bool:
    return name in catalog() or name in PROMETHEUS_SERIES or name in envoy_series()


# Grafana's interval macros, as a query parser sees them.
GRAFANA_MACROS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def without_grafana_macros(expr: str) -> str:
    return re.sub(r"\$__\w+", lambda m: GRAFANA_MACROS[m[0]], expr)


# --- PromQL ---
MATCH_OPERATORS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


@dataclass(frozen=True)
class Selector:
    metric: str | None
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)


def selectors(expr: str) -> list[Selector]:
    """Every series selector of a PromQL expression (raises ValueError if it does not parse)."""
    found = []

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = tuple((m.name, MATCH_OPERATORS[str(m.op)], m.value) for m in node.matchers.matchers)
            found.append(Selector(node.name, matchers))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def matcher_values(operator: str, value: str) -> set[str]:
    """The label values a matcher names: itself, or each alternative of a simple regex."""
    return set(value.split("|")) if "~" in operator else {value}


def check_matchers(selector: Selector) -> None:
    """Asserts that each label a selector matches exists on its metric, with a value it can take."""
    metric = catalog().get(selector.metric)
    for label, operator, value in selector.matchers:
        if metric is None:  # up or Envoy's stats
            if label == "job":
                assert matcher_values(operator, value) <= JOBS, selector
            continue
        assert label in metric.labels | TARGET_LABELS, f"{selector.metric} has no label {label}"
        known = known_label_values(label, metric)
        if known is not None:
            assert matcher_values(operator, value) <= known, f"{selector.metric}{{{label}{operator}{value}}}"
