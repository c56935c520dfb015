"""Envoy on Kubernetes: its ConfigMap is the repo's template rendered for the
cluster (and not stale), the Deployment runs it, and the preStop hook drains
a real Envoy the way the manifest says."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

import pytest
import yaml

from devstack import envoy
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from leo_mesh import envoy_config
from tests import deploy_contract as contract
from tests import kustomize_build
from tests.kustomize_build import read_env_file

BASE = contract.DEPLOY / "k8s" / "base"
RENDER_ENV = BASE / "envoy" / "render.env"
RENDERED = BASE / "envoy" / "envoy.yaml"
IMAGE_WORKDIR = PurePosixPath("/app")


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return kustomize_build.build(BASE)


@pytest.fixture(scope="module")
def deployment(base) -> dict:
    (found,) = [o for o in base if o["kind"] == "Deployment" and o["metadata"]["name"] == "envoy"]
    return found


def envoy_container(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def render(env: dict[str, str], out: Path) -> str:
    """`python -m leo_mesh.envoy_config out` with exactly env, as the documented command runs it."""
    subprocess.run(
        [sys.executable, "-m", "leo_mesh.envoy_config", str(out)],
        env=env,
        cwd=out.parent,
        check=True,
        capture_output=True,
    )
    return out.read_text()


def test_committed_config_is_the_template_rendered_with_render_env(tmp_path):
    fresh = render(read_env_file(RENDER_ENV), tmp_path / "envoy.yaml")
    assert RENDERED.read_text() == fresh, "stale: run the command in deploy/k8s/base/kustomization.yaml"


def test_render_env_sets_only_what_the_renderer_reads():
    assert set(read_env_file(RENDER_ENV)) <= {name.upper() for name in envoy_config.EnvoySettings.model_fields}


def test_descriptor_path_is_where_the_image_has_it():
    path = PurePosixPath(read_env_file(RENDER_ENV)["ENVOY_DESCRIPTOR_PATH"])
    assert path == IMAGE_WORKDIR / envoy_config.DESCRIPTOR.relative_to(contract.ROOT)
    assert f"WORKDIR {IMAGE_WORKDIR}" in (contract.ROOT / "Dockerfile").read_text()


def test_rendered_config_passes_envoy_validation(tmp_path):
    local = RENDERED.read_text().replace(
        read_env_file(RENDER_ENV)["ENVOY_DESCRIPTOR_PATH"], str(envoy_config.DESCRIPTOR)
    )
    (tmp_path / "envoy.yaml").write_text(local)
    result = subprocess.run(
        [envoy.envoy_binary(), "--mode", "validate", "-c", str(tmp_path / "envoy.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_deployment_runs_the_config_map(base, deployment):
    config = yaml.safe_load(RENDERED.read_text())
    container = envoy_container(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    admin = config["admin"]["address"]["socket_address"]
    assert (listener["address"], listener["port_value"]) == ("0.0.0.0", ports["http"])
    assert (admin["address"], admin["port_value"]) == ("0.0.0.0", ports["admin"])
    # -c names the ConfigMap's file where the volume is mounted.
    command = container["command"]
    assert command[:2] == ["envoy", "-c"]
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    (config_map,) = [
        o for o in base if o["kind"] == "ConfigMap" and o["metadata"]["name"] == volume["configMap"]["name"]
    ]
    (key,) = config_map["data"]
    assert command[2] == str(PurePosixPath(mount["mountPath"]) / key)
    assert config_map["data"][key] == RENDERED.read_text()


def test_envoy_reaches_every_api_server_through_the_headless_service(base):
    env = read_env_file(RENDER_ENV)
    (service,) = [o for o in base if o["kind"] == "Service" and o["metadata"]["name"] == env["API_SERVER_HOST"]]
    assert service["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in service["spec"]["ports"]] == [int(env["API_SERVER_PORT"])]
    assert int(env["API_SERVER_PORT"]) == contract.BY_NAME["api-server"].default_port


def test_probes_use_the_admin_port(deployment):
    container = envoy_container(deployment)
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/server_info", "port": "admin"}


def status(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def refuses_connections(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
    except urllib.error.HTTPError:
        return False
    except OSError:
        return True
    return False


def test_prestop_takes_a_real_envoy_out_of_service_then_drains_it(deployment, tmp_path):
    """The hook's own command, run against Envoy started with the manifest's
    arguments (a local config on free ports, a 1 s drain instead of 15 s)."""
    container = envoy_container(deployment)
    listen, admin = free_port(), free_port()
    config = envoy_config.write_config(
        tmp_path / "envoy.yaml",
        envoy_config.EnvoySettings(envoy_listen_port=listen, envoy_admin_port=admin, api_server_port=free_port()),
    )
    argv = list(container["command"])
    argv[0], argv[2] = envoy.envoy_binary(), str(config)
    argv[argv.index("--drain-time-s") + 1] = "1"
    proxy = ManagedProcess("envoy", [*argv, "--disable-hot-restart"], env={}, log_path=tmp_path / "envoy.log")
    proxy.start()
    try:
        assert contract.read_when_up(f"http://127.0.0.1:{admin}/ready", proxy).strip() == "LIVE"
        hook = container["lifecycle"]["preStop"]["exec"]["command"]
        python, flag, snippet, admin_url, _, _ = hook
        assert (python, flag, admin_url) == ("python", "-c", f"http://127.0.0.1:{contract.ENVOY_ADMIN_PORT}")
        subprocess.run([sys.executable, flag, snippet, f"http://127.0.0.1:{admin}", "0", "0"], check=True, timeout=30)
        # Out of the Service at once, still alive for the liveness probe.
        assert status(f"http://127.0.0.1:{admin}/ready") == 503
        assert status(f"http://127.0.0.1:{admin}/server_info") == 200
        # The listener closes once the drain time is over.
        deadline = time.monotonic() + 60
        while not refuses_connections(listen):
            assert time.monotonic() < deadline, proxy.log_text()
            time.sleep(0.2)
        assert proxy.running()
    finally:
        proxy.stop()
