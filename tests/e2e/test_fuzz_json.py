"""Random and malformed JSON at every route through Envoy: never a 5xx, and
a rejected request writes nothing."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.clients import count_generations, json_client

ROUTES = [
    ("POST", "/v1/generations"),
    ("POST", "/api/generation"),
    ("GET", "/v1/generations/{id}"),
    ("GET", "/api/generation/{id}"),
    ("GET", "/v1/generations"),
    ("POST", "/v1/generations/{id}:cancel"),
    ("GET", "/v1/generations/{id}:watch"),
    ("POST", "/v1/webhookSecret:rotate"),
]
FIELDS = [
    "prompt",
    "model",
    "width",
    "height",
    "requestId",
    "webhookUrl",
    "pageSize",
    "pageToken",
    "status",
    "generationId",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
# Bodies: known fields with values of any type, arbitrary JSON, or bytes that
# are not JSON at all.
bodies = (
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6).map(json.dumps)
    | json_values.map(json.dumps)
    | st.binary(max_size=200).map(lambda raw: raw.decode("latin-1"))
)
path_ids = st.text(max_size=60) | st.uuids().map(str)
queries = st.dictionaries(st.sampled_from([*FIELDS, "x", "page_size"]), st.text(max_size=20), max_size=4)


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(env={"MOCK_AI_MIN_DELAY_S": "0.2", "MOCK_AI_MAX_DELAY_S": "0.4"})


@pytest.fixture(scope="module")
def http(mesh):
    key = mesh.create_api_key("fuzzer")
    with json_client(mesh, key) as client:
        yield client


@pytest.mark.parametrize("verb, template", ROUTES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, path_id=path_ids, query=queries)
def test_no_5xx_and_nothing_written_on_rejection(mesh, http, verb, template, body, path_id, query):
    path = template.replace("{id}", quote(path_id, safe="") or "x")
    before = count_generations(mesh.database_url)
    response = http.request(
        verb,
        path,
        params=query,
        content=body.encode() if verb == "POST" else None,
        headers={"content-type": "application/json"},
    )
    assert response.status_code < 500, (verb, path, body, response.status_code, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.text
        assert {"code", "message"} <= set(response.json())
        assert count_generations(mesh.database_url) == before
