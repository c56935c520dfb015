"""What every service has: reflection (through grpcurl), health, one log line
per RPC, graceful shutdown."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.clients import api_for, wait_for

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or "grpcurl"

SERVICES = {
    "api": ("leo.generation.v1.GenerationService", ["CreateGeneration", "GetGeneration"]),
    "ai": ("leo.ai.v1.AIService", ["StartGeneration", "StartGenerations"]),
    "callback": ("leo.callback.v1.CallbackService", ["CompleteGeneration", "CompleteGenerations"]),
}


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(with_envoy=False)


def address(mesh, which: str) -> str:
    port = {"api": mesh.ports.api[0], "ai": mesh.ports.ai, "callback": mesh.ports.callback}[which]
    return f"127.0.0.1:{port}"


def grpcurl(*args: str) -> str:
    result = subprocess.run([GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("which", SERVICES)
def test_grpcurl_lists_and_describes(mesh, which):
    service, methods = SERVICES[which]
    listed = grpcurl(address(mesh, which), "list").split()
    assert {service, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= set(listed)
    described = grpcurl(address(mesh, which), "describe", service)
    for method in methods:
        assert f"rpc {method}" in described


@pytest.mark.parametrize("which", SERVICES)
def test_health_is_serving(mesh, which):
    service, _ = SERVICES[which]
    with grpc.insecure_channel(address(mesh, which)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", service):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_grpcurl_calls_the_api(mesh):
    key = mesh.create_api_key("grpcurl user")
    out = grpcurl(
        "-H",
        f"authorization: Bearer {key}",
        "-d",
        '{"prompt": "from grpcurl"}',
        address(mesh, "api"),
        "leo.generation.v1.GenerationService/CreateGeneration",
    )
    assert '"status": "STATUS_PENDING"' in out


def test_one_structured_log_line_per_rpc(mesh):
    client = api_for(mesh)
    missing = "00000000-0000-4000-8000-0000000000aa"
    with pytest.raises(grpc.RpcError):
        client.get(missing)
    client.close()
    (api,) = mesh.api_servers
    lines = wait_for(
        lambda: [
            r
            for r in api.log_records()
            if r.get("event") == "rpc" and r.get("method") == "/leo.generation.v1.GenerationService/GetGeneration"
        ],
        timeout_s=5,
        what="the RPC's log line",
    )
    assert len(lines) == 1
    assert lines[0]["code"] == "NOT_FOUND" and lines[0]["service"] == "api_server"
    assert lines[0]["ms"] >= 0 and missing in lines[0]["error"]


def test_sigterm_shuts_down_gracefully(make_mesh):
    mesh = make_mesh(with_envoy=False)
    for process in reversed(mesh.processes()):
        assert process.stop() == 0, process.log_text()[-2000:]
        events = [r.get("event") for r in process.log_records()]
        assert "shutting down" in events and events[-1] == "stopped"
