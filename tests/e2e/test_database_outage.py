"""PostgreSQL stopped and started while requests flow: callers see
UNAVAILABLE (503 through Envoy), no process exits, nothing accepted is lost."""

from __future__ import annotations

import shutil
import threading
import time

import grpc
import pytest

from devstack.mesh import Mesh, Ports
from tests import rows
from tests.clients import api_for, json_client, wait_for
from tests.conftest import new_postgres
from tests.mesh_fixtures import new_migrated_database

FAST = {
    "MOCK_AI_MIN_DELAY_S": "0.2",
    "MOCK_AI_MAX_DELAY_S": "0.6",
    "DISPATCH_POLL_INTERVAL_S": "0.2",
    "DISPATCH_BACKOFF_BASE_S": "0.1",
    "DISPATCH_BACKOFF_CAP_S": "0.5",
    "MOCK_AI_CALLBACK_BACKOFF_BASE_S": "0.1",
    "MOCK_AI_CALLBACK_BACKOFF_CAP_S": "1",
}


@pytest.fixture()
def own_postgres():
    """A PostgreSQL of this test's own, so stopping it harms no other test."""
    with new_postgres() as server:
        yield server
    shutil.rmtree(server.data_dir, ignore_errors=True)


def test_database_outage(own_postgres, tmp_path):
    mesh = Mesh(new_migrated_database(own_postgres), tmp_path / "mesh", ports=Ports.free(), env=FAST)
    with mesh:
        api = api_for(mesh)
        accepted: list[str] = []
        refused: list[grpc.StatusCode] = []
        stop = threading.Event()

        def flow():
            while not stop.is_set():
                try:
                    accepted.append(api.create("through the outage", width=64, height=64).generation_id)
                except grpc.RpcError as exc:
                    refused.append(exc.code())
                time.sleep(0.02)

        worker = threading.Thread(target=flow)
        worker.start()
        try:
            wait_for(lambda: len(accepted) >= 20, timeout_s=10, what="creates before the outage")
            own_postgres.stop()
            wait_for(lambda: len(refused) >= 10, timeout_s=30, what="creates refused during the outage")
            with json_client(mesh, api.key) as http:
                response = http.post("/v1/generations", json={"prompt": "during"})
            assert response.status_code == 503, response.text
            assert response.json()["code"] == 14
            own_postgres.start()
            during = len(accepted)
            wait_for(lambda: len(accepted) >= during + 20, timeout_s=30, what="creates after the outage")
        finally:
            stop.set()
            worker.join()

        assert set(refused) == {grpc.StatusCode.UNAVAILABLE}
        assert all(process.running() for process in mesh.processes())
        counts = wait_for(
            lambda: (c := rows.statuses(mesh.database_url)).get("PENDING", 0) == 0 and c,
            timeout_s=60,
            what="every accepted generation to finish",
        )
        assert counts == {"COMPLETE": len(accepted)}
