"""leo_client through Envoy's gRPC port on the real mesh: unary calls, a
watch and a streamed download pass through the edge; and many watches
closed early leave the api_server process serving (reading the peer of a
cancelled call once crashed it). Every other client behaviour, against an
api_server in process: tests/integration/test_sdk.py."""

from __future__ import annotations

import itertools

from PIL import Image

from leo_client import Client, Model, Status
from tests.clients import new_owner
from tests.rows import generation_ids


def envoy(mesh) -> str:
    return f"127.0.0.1:{mesh.ports.envoy}"


def test_generate_watch_and_download_through_envoy(edge_mesh, tmp_path):
    owner, key = new_owner(edge_mesh, "sdk")
    updates = []
    with Client(envoy(edge_mesh), key) as client:
        done = client.generate("a lighthouse at dusk", model=Model.SD, width=128, height=96, on_update=updates.append)
        assert done == client.get(done.id)
        paths = client.download(done, tmp_path)
        assert [g.id for g in client.list()] == [done.id]
    assert done.status is Status.COMPLETE and done.model is Model.SD
    assert updates[0].status is Status.PENDING and updates[-1] == done
    assert all(a != b for a, b in itertools.pairwise(updates))
    assert [p.name for p in paths] == [f"{done.id}-0.png", f"{done.id}-1.png"]
    assert all(Image.open(p).size == (128, 96) for p in paths)
    assert [p.stat().st_size for p in paths] == [a.byte_size for a in done.assets]
    assert generation_ids(edge_mesh.database_url, owner) == [done.id]


def test_watches_closed_early_leave_the_api_server_serving(edge_mesh):
    """Closing a watch before its end cancels the call. The api_server once
    crashed on that (reading the peer of a cancelled call), within a few."""
    with Client(envoy(edge_mesh), new_owner(edge_mesh, "sdk")[1]) as client:
        for i in range(30):
            stream = client.watch(client.create(f"watched briefly {i}").id)
            assert next(stream).status is Status.PENDING
            stream.close()
        assert all(api_server.running() for api_server in edge_mesh.api_servers)
        assert client.generate("still served").status is Status.COMPLETE
