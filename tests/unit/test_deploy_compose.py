"""compose.yaml's observability: Prometheus, Grafana and Jaeger are wired to
the services and to deploy/ (no container engine needed)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import pytest
import yaml

from tests import deploy_contract as contract

COMPOSE = yaml.safe_load((contract.ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
UIS = {"prometheus": 9090, "grafana": 3000, "jaeger": 16686}
OTLP_GRPC_PORT = 4317
SAMPLERS = {"always_on", "parentbased_always_on", "traceidratio", "parentbased_traceidratio"}


def env(name: str) -> dict[str, str]:
    return {key: str(value) for key, value in (SERVICES[name].get("environment") or {}).items()}


def mounts(name: str) -> dict[str, str]:
    """Container path -> repository path, for the service's bind mounts."""
    found = {}
    for volume in SERVICES[name].get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            found[target] = source
    return found


def repo_path(name: str, container_path: str):
    """The repository file a container path of the service is mounted from."""
    for target, source in mounts(name).items():
        if PurePosixPath(container_path).is_relative_to(target):
            return contract.ROOT / source / PurePosixPath(container_path).relative_to(target)
    raise AssertionError(f"{container_path} is not mounted into {name}")


def test_images_are_pinned():
    for name in UIS:
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", SERVICES[name]["image"]), SERVICES[name]["image"]


@pytest.mark.parametrize("name", UIS)
def test_ui_is_published_on_the_loopback_only(name):
    assert SERVICES[name]["ports"] == [f"127.0.0.1:{UIS[name]}:{UIS[name]}"]


def test_mounts_come_from_the_repository_read_only():
    for name in UIS:
        for volume in SERVICES[name].get("volumes", []):
            source, _, mode = [*volume.split(":"), ""][:3]
            if source.startswith("./"):
                assert (contract.ROOT / source).is_dir() and mode == "ro", volume


def test_prometheus_reads_the_repository_config():
    command = SERVICES["prometheus"]["command"]
    config_path = next(arg.split("=", 1)[1] for arg in command if arg.startswith("--config.file="))
    config_file = repo_path("prometheus", config_path)
    assert config_file == contract.DEPLOY / "prometheus" / "prometheus.yml"
    for rule_file in yaml.safe_load(config_file.read_text())["rule_files"]:
        assert repo_path("prometheus", str(PurePosixPath(config_path).parent / rule_file)).is_file()


def test_grafana_provisions_prometheus_jaeger_and_the_dashboard():
    provisioning = repo_path("grafana", "/etc/grafana/provisioning/datasources")
    sources = yaml.safe_load((provisioning / "datasources.yml").read_text())["datasources"]
    assert {s["type"]: s["url"] for s in sources} == {
        "prometheus": f"http://prometheus:{UIS['prometheus']}",
        "jaeger": f"http://jaeger:{UIS['jaeger']}",
    }
    providers = repo_path("grafana", "/etc/grafana/provisioning/dashboards") / "dashboards.yml"
    (provider,) = yaml.safe_load(providers.read_text())["providers"]
    assert repo_path("grafana", provider["options"]["path"]) == contract.DEPLOY / "grafana" / "dashboards"
    home = env("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert repo_path("grafana", home).is_file()
    assert PurePosixPath(home).is_relative_to(provider["options"]["path"])


def test_jaeger_takes_otlp_grpc_on_the_compose_network():
    command = SERVICES["jaeger"]["command"]
    assert command == ["--set", f"receivers.otlp.protocols.grpc.endpoint=0.0.0.0:{OTLP_GRPC_PORT}"]
    assert not any(str(OTLP_GRPC_PORT) in port for s in SERVICES.values() for port in s.get("ports", []))


OURS = list(contract.BY_COMPOSE_SERVICE.items())


@pytest.mark.parametrize(("name", "service"), OURS, ids=[name for name, _ in OURS])
def test_service_traces_to_jaeger_under_its_name(name, service):
    service_env = env(name)
    assert service_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://jaeger:{OTLP_GRPC_PORT}"
    assert service_env["OTEL_SERVICE_NAME"] == service.name
    assert service_env["OTEL_TRACES_SAMPLER"] in SAMPLERS


@pytest.mark.parametrize(("name", "service"), OURS, ids=[name for name, _ in OURS])
def test_service_serves_metrics_on_its_port_unpublished(name, service):
    assert env(name)[service.metrics_port_var] == str(service.metrics_port)
    assert "ports" not in SERVICES[name]


def test_migrate_and_envoy_are_not_traced_by_variables():
    # migrate is a one-off command; Envoy traces through its own config.
    assert not any(key.startswith("OTEL_") for key in {**env("migrate"), **env("envoy")})
