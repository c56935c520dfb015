"""The api_server as several worker processes on one port (SO_REUSEPORT):
calls spread across them, a SIGTERM drains them all, and a worker that dies
takes the service down with a non-zero exit, for its supervisor to restart."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import grpc

from leo.generation.v1 import generation_pb2_grpc
from tests.clients import Api, statuses, wait_for

FAST = {"MOCK_AI_MIN_DELAY_S": "0.1", "MOCK_AI_MAX_DELAY_S": "0.3", "API_SERVER_WORKERS": "2"}


def workers_of(pid: int) -> list[int]:
    """The worker processes of an api_server (not multiprocessing's resource tracker)."""
    children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def test_two_workers_share_the_port_and_the_work(make_mesh):
    mesh = make_mesh(env=FAST, with_envoy=False)
    (server,) = mesh.api_servers
    key = mesh.create_api_key("shared")
    wait_for(lambda: len(workers_of(server.proc.pid)) == 2, timeout_s=10, what="two workers")
    # New connections are spread by the kernel: a connection each (channels
    # of one process would otherwise share one).
    clients = [Api(mesh.api_address, key) for _ in range(12)]
    for client in clients:
        client.channel = grpc.insecure_channel(mesh.api_address, options=[("grpc.use_local_subchannel_pool", 1)])
        client.stub = generation_pb2_grpc.GenerationServiceStub(client.channel)
    ids = [client.create(f"spread {i}").generation_id for i, client in enumerate(clients)]
    wait_for(lambda: statuses(mesh.database_url) == {"COMPLETE": len(ids)}, timeout_s=30, what="every generation")
    served = Counter(
        r.get("worker")
        for r in server.log_records()
        if r.get("event") == "rpc" and r["method"].endswith("/CreateGeneration")
    )
    assert set(served) == {0, 1}, served
    assert sum(served.values()) == len(ids)
    for client in clients:
        client.close()
    assert server.stop() == 0  # SIGTERM drains every worker


def test_a_worker_that_dies_stops_the_service_with_exit_1(make_mesh):
    mesh = make_mesh(env=FAST, with_envoy=False)
    (server,) = mesh.api_servers
    children = wait_for(lambda: len(w := workers_of(server.proc.pid)) == 2 and w, timeout_s=10, what="two workers")
    os.kill(children[0], signal.SIGKILL)
    assert server.proc.wait(timeout=60) == 1
    assert not any(Path(f"/proc/{child}").exists() for child in children)
