"""Schemathesis fuzzes the JSON API through Envoy against gen/openapi.json.

Every operation of the spec gets schema-valid and schema-invalid requests
(coverage and fuzzing phases, deterministic, a bounded number of examples)
and each response must pass schemathesis' checks: no 5xx, only declared
status codes and content types, bodies that match their schemas, invalid
data refused, undeclared methods refused, auth enforced.

positive_data_acceptance is off: the spec cannot state every rule a valid
request must keep (a page token the API gave out, a webhook host that
resolves to a public address, cancelling only a PENDING generation), so a
schema-valid request may rightly get a 400.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from api_server.validation import broken_rule, rules_of
from leo.generation.v1 import generation_pb2
from leo_mesh.db.keys import new_key
from tests.clients import wait_for

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 15
# A stand-in for any valid webhook URL: an address literal, so no request
# sends the api_server to a DNS resolver (nothing a test does may leave the machine).
LOCAL_WEBHOOK = "http://127.0.0.1:9/hook"

# The API key the cases carry, stored in the mesh by the `api` fixture. Given
# as the spec's bearerAuth, so schemathesis leaves it out of the cases that
# test a missing or wrong Authorization header.
KEY = new_key()
AUTHORIZATION = {"Authorization": f"Bearer {KEY}"}
CONFIG = {
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    "checks": {"positive_data_acceptance": {"enabled": False}},
    "auth": {"openapi": {"bearerAuth": {"bearer": KEY}}},
    "request-timeout": 10,
}


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(env={"MOCK_AI_MIN_DELAY_S": "0.2", "MOCK_AI_MAX_DELAY_S": "0.5"})


def events_as_schemathesis_reads_them(spec: dict) -> dict:
    """The spec with each event stream's schema replaced by its one event's.

    In the spec, an event stream's `schema` is the stream as text, as
    OpenAPI 3.1 has a body and as client generators need it; `x-itemSchema`
    is one event (OpenAPI 3.2's itemSchema). schemathesis reads an event
    stream's `schema` as one event's and checks every event against it (its
    data against the data's contentSchema): it gets the event's."""
    for item in spec["paths"].values():
        for operation in item.values():
            for response in operation.get("responses", {}).values():
                stream = response.get("content", {}).get("text/event-stream")
                if stream is not None:
                    stream["schema"] = stream.pop("x-itemSchema")
    return spec


SPEC = events_as_schemathesis_reads_them(json.loads((ROOT / "gen/openapi.json").read_text()))
schema = schemathesis.openapi.from_dict(SPEC, config=SchemathesisConfig.from_dict(CONFIG))


@pytest.fixture(scope="module")
def api(mesh) -> dict:
    """Where the cases are sent: the mesh's Envoy, which knows KEY."""
    mesh.create_api_key("schemathesis", KEY)
    return {"base_url": mesh.envoy_url}


def _keep_webhooks_local(case) -> None:
    """A valid webhookUrl becomes LOCAL_WEBHOOK (still valid); an invalid one stays as drawn."""
    body = case.body if isinstance(case.body, dict) else {}
    url = body.get("webhookUrl")
    field = generation_pb2.CreateGenerationRequest.DESCRIPTOR.fields_by_name["webhook_url"]
    if isinstance(url, str) and url and broken_rule(rules_of(field), url) is None:
        body["webhookUrl"] = LOCAL_WEBHOOK


@schema.parametrize()
def test_api_conforms_to_its_spec(api, case):
    _keep_webhooks_local(case)
    response = case.call_and_validate(**api)
    if case.meta is not None and case.meta.generation.mode.is_positive:
        assert response.status_code != 401, "a valid case carries the key"


# Drawn generation IDs name no generation, so the fuzzer above only sees
# 400/404 from these operations; here each runs under the same checks on a
# real generation, PENDING and final (a watch then streams every state).
ON_A_GENERATION = [
    (method.upper(), path)
    for path, methods in schema.raw_schema["paths"].items()
    if "{generation_id}" in path
    for method in methods
]
FINAL = {"STATUS_COMPLETE", "STATUS_FAILED"}


def _status(http: httpx.Client, generation_id: str) -> str:
    return http.get(f"/v1/generations/{generation_id}").json()["generation"]["status"]


def _sse_statuses(content: bytes) -> list[str]:
    data = [line.removeprefix("data: ") for line in content.decode().split("\n") if line.startswith("data: ")]
    return [json.loads(item)["generation"]["status"] for item in data]


@pytest.mark.parametrize("final", [False, True], ids=["pending", "final"])
@pytest.mark.parametrize("method, path", ON_A_GENERATION)
def test_operations_on_a_real_generation_conform(api, method, path, final):
    with httpx.Client(base_url=api["base_url"], headers=AUTHORIZATION, timeout=10) as http:
        created = http.post("/v1/generations", json={"prompt": "a kite over dunes"})
        generation_id = created.json()["generation"]["generationId"]
        if final:
            wait_for(lambda: _status(http, generation_id) in FINAL, what=f"generation {generation_id} to finish")
        body = {"body": {}} if method == "POST" else {}
        parameters = {"generation_id": generation_id, **({"index": 0} if "{index}" in path else {})}
        case = schema[path][method].Case(path_parameters=parameters, **body)
        response = case.call_and_validate(headers=AUTHORIZATION, **api)
        if "{index}" in path:
            # A file exists once the generation is COMPLETE (the mock AI makes no failures here).
            complete = _status(http, generation_id) == "STATUS_COMPLETE"
            assert response.status_code == (200 if complete else 404), response.text
            assert not final or complete
        elif path.endswith(":cancel"):
            # A PENDING generation may finish (the mock AI takes 0.2-0.5 s) before the cancel comes.
            cancelled = _status(http, generation_id) == "STATUS_CANCELLED"
            assert response.status_code == (200 if cancelled else 400), response.text
            assert not (final and cancelled)
        else:
            assert response.status_code == 200, response.text
        if path.endswith(":watch"):
            statuses = _sse_statuses(response.content)
            assert statuses and statuses[-1] in FINAL, statuses
