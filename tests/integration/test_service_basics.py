"""What every service has, on the three in process: reflection (through
grpcurl), health, one structured log line per RPC. A SIGTERM's graceful
shutdown of each process: tests/e2e/test_processes.py."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.inprocess import channel_to, flow
from tests.log_lines import captured_lines
from tests.mesh_fixtures import migrated_database

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or "grpcurl"

SERVICES = {
    "api": ("leo.generation.v1.GenerationService", ["CreateGeneration", "GetGeneration"]),
    "ai": ("leo.ai.v1.AIService", ["StartGeneration", "StartGenerations"]),
    "callback": ("leo.callback.v1.CallbackService", ["CompleteGeneration", "CompleteGenerations"]),
}


@pytest.fixture(scope="module")
async def mesh(postgres):
    with migrated_database(postgres) as database_url:
        async with flow(database_url, ai={"mock_ai_min_delay_s": 60, "mock_ai_max_delay_s": 60}) as running:
            yield running


def app_of(mesh, which: str):
    return {"api": mesh.api, "ai": mesh.ai, "callback": mesh.callback}[which]


async def grpcurl(*args: str) -> str:
    """grpcurl in a subprocess, awaited: the servers keep running meanwhile."""
    process = await asyncio.create_subprocess_exec(
        GRPCURL, "-plaintext", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.parametrize("which", SERVICES)
async def test_grpcurl_lists_and_describes(mesh, which):
    service, methods = SERVICES[which]
    address = f"127.0.0.1:{app_of(mesh, which).port}"
    listed = (await grpcurl(address, "list")).split()
    assert {service, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= set(listed)
    described = await grpcurl(address, "describe", service)
    for method in methods:
        assert f"rpc {method}" in described


@pytest.mark.parametrize("which", SERVICES)
async def test_health_is_serving(mesh, which):
    service, _ = SERVICES[which]
    async with channel_to(app_of(mesh, which)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", service):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_grpcurl_calls_the_api(mesh):
    out = await grpcurl(
        "-H",
        f"authorization: Bearer {await mesh.key('grpcurl user')}",
        "-d",
        '{"prompt": "from grpcurl"}',
        mesh.address,
        "leo.generation.v1.GenerationService/CreateGeneration",
    )
    assert '"status": "STATUS_PENDING"' in out


async def test_one_structured_log_line_per_rpc(mesh):
    client = await mesh.client()
    missing = "00000000-0000-4000-8000-0000000000aa"
    with captured_lines() as lines, pytest.raises(grpc.aio.AioRpcError):
        await client.get(missing)
    rpc_lines = [
        r
        for r in lines
        if r.get("event") == "rpc" and r.get("method") == "/leo.generation.v1.GenerationService/GetGeneration"
    ]
    assert len(rpc_lines) == 1
    # (Each process names itself in its lines' "service": tests/e2e/test_processes.py.)
    assert rpc_lines[0]["code"] == "NOT_FOUND" and rpc_lines[0]["logger"] == "leo.rpc"
    assert rpc_lines[0]["ms"] >= 0 and missing in rpc_lines[0]["error"]
