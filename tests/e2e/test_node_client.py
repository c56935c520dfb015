"""A Node client (tests/node/conformance.mjs: @grpc/grpc-js, @grpc/proto-loader
and protobufjs on protos/ and gen/include, and the eventsource package) runs
the API through Envoy in one process: create, watch, get, download, list
pages, cancel, rotate, an error with its details, and a browser's
EventSource on a signed watch link that stops after the final event."""

from __future__ import annotations

import json
import os

import pytest

from tests.nodejs import ROOT, run_node

FAST = {"MOCK_AI_MIN_DELAY_S": "1.0", "MOCK_AI_MAX_DELAY_S": "1.5"}


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(env=FAST)


def test_a_node_service_and_an_event_source_use_the_api_as_their_ecosystem_expects(mesh):
    run = run_node(
        "conformance.mjs",
        env={
            "LEO_API_TARGET": f"127.0.0.1:{mesh.ports.envoy}",
            "LEO_API_KEY": mesh.create_api_key("node"),
            "LEO_PROTO_DIRS": os.pathsep.join([str(ROOT / "protos"), str(ROOT / "gen" / "include")]),
        },
    )
    assert run.returncode == 0, run.stderr + run.stdout
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["watched"][0] == "STATUS_PENDING" and seen["watched"][-1] == "STATUS_COMPLETE"
    assert seen["downloaded"] > 0 and seen["pages"] == 3
    assert seen["error"] == {"code": 3, "reason": "FIELD_VIOLATION"}
    assert [request["status"] for request in seen["eventSource"]] == [200, 204]
