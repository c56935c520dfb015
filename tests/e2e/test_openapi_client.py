"""A client generated from gen/openapi.json by openapi-python-client, as a
team that never saw our code would make one, drives the JSON API through
Envoy: every route becomes a typed function, and create, get, list, cancel,
watch, download and a field error work as the spec says.

The client is generated into a temporary folder for the module's tests
(nothing of it is committed)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "gen" / "openapi.json"
PACKAGE = "leo_generated_api"
FAST = {"MOCK_AI_MIN_DELAY_S": "1.0", "MOCK_AI_MAX_DELAY_S": "1.5"}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> ModuleType:
    """The generated package, importable."""
    out = tmp_path_factory.mktemp("openapi-client")
    bin_dir = Path(sys.executable).parent
    command = [bin_dir / "openapi-python-client", "generate", "--path", SPEC, "--meta", "none"]
    run = subprocess.run(
        [*command, "--output-path", out / PACKAGE],
        capture_output=True,
        text=True,
        env={"PATH": str(bin_dir)},  # its post-hooks run ruff
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # It warns when it leaves a route or a response out; nothing may be left out.
    assert "WARNING" not in run.stdout + run.stderr, run.stdout + run.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def api(generated: ModuleType, operation: str) -> ModuleType:
    """The module of one operation (openapi-python-client makes one per operationId)."""
    return importlib.import_module(f"{PACKAGE}.api.generation_service.generation_service_{operation}")


def models(generated: ModuleType) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.models")


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(env=FAST)


@pytest.fixture(scope="module")
def client(generated, mesh):
    authenticated = generated.AuthenticatedClient(
        base_url=mesh.envoy_url, token=mesh.create_api_key("generated"), raise_on_unexpected_status=True
    )
    with authenticated:
        yield authenticated


def create(generated, client, prompt: str, **fields):
    body = models(generated).LeoGenerationV1CreateGenerationRequest(prompt=prompt, **fields)
    response = api(generated, "create_generation").sync_detailed(client=client, body=body)
    assert response.status_code == 200, response.content
    return response.parsed


def test_every_operation_is_a_typed_function_and_the_legacy_ones_are_apart(generated):
    for operation in (
        "create_generation",
        "get_generation",
        "list_generations",
        "cancel_generation",
        "watch_generation",
        "get_generation_asset",
        "rotate_webhook_secret",
        "create_generation_legacy",
        "get_generation_legacy",
    ):
        assert callable(api(generated, operation).sync_detailed), operation
    fields = models(generated).LeoGenerationV1CreateGenerationRequest.__annotations__
    assert "int" in fields["width"] and "Any" not in fields["width"]
    assert "UUID" in fields["request_id"]


def test_create_get_watch_and_download(generated, client):
    request_id = uuid.uuid4()
    created = create(generated, client, "a lighthouse", width=64, height=64, request_id=request_id)
    generation = created.generation
    assert generation.status.value == "STATUS_PENDING" and generation.width == 64
    again = api(generated, "create_generation").sync(
        client=client,
        body=models(generated).LeoGenerationV1CreateGenerationRequest(prompt="a lighthouse", width=64, height=64),
        # openapi-python-client 0.29 sends a header as given, and httpx takes text only.
        idempotency_key=str(request_id),
    )
    assert again.generation.generation_id == generation.generation_id  # the header means the same

    events = api(generated, "watch_generation").sync(client=client, generation_id=generation.generation_id)
    assert isinstance(events, str) and events.endswith("\n\n")
    assert '"status":"STATUS_COMPLETE"' in events.rsplit("data: ", 1)[1]

    done = api(generated, "get_generation").sync(client=client, generation_id=generation.generation_id).generation
    assert done.status.value == "STATUS_COMPLETE" and len(done.assets) == 2
    file = api(generated, "get_generation_asset").sync(client=client, generation_id=generation.generation_id, index=1)
    assert file.payload.read().startswith(PNG)

    # A signed link, without a key.
    query = parse_qs(urlsplit(done.assets[0].url).query)
    with generated.Client(base_url=str(client._base_url), raise_on_unexpected_status=True) as anonymous:
        linked = api(generated, "get_generation_asset").sync(
            client=anonymous,
            generation_id=generation.generation_id,
            index=0,
            expires=query["expires"][0],
            signature=query["signature"][0],
        )
    assert linked.payload.read().startswith(PNG)


def test_list_pages_and_cancel(generated, client):
    made = [create(generated, client, f"a boat {n}").generation.generation_id for n in range(3)]
    listing = api(generated, "list_generations")
    seen, token = [], ""
    while True:
        page = listing.sync(client=client, page_size=2, page_token=token)
        assert len(page.generations) <= 2
        seen += [generation.generation_id for generation in page.generations]
        token = page.next_page_token
        if not token:
            break
    assert seen[:3] == made[::-1]  # newest first
    cancelled = api(generated, "cancel_generation").sync(
        client=client,
        generation_id=made[-1],
        body=models(generated).GenerationServiceCancelGenerationBody(),
    )
    assert cancelled.generation.status.value == "STATUS_CANCELLED"


def test_a_field_error_names_the_field_and_the_rule(generated, client):
    body = models(generated).LeoGenerationV1CreateGenerationRequest(prompt="a lighthouse", width=1004)
    response = api(generated, "create_generation").sync_detailed(client=client, body=body)
    assert response.status_code == 400
    error = response.parsed
    assert error.code == 3
    [bad_request] = [d for d in error.details if d.type_ == "type.googleapis.com/google.rpc.BadRequest"]
    [violation] = bad_request.additional_properties["fieldViolations"]
    assert (violation["field"], violation["description"]) == (
        "width",
        "must be a multiple of 8 from 64 to 2048 (or 0 for the default)",
    )


def test_an_empty_idempotency_key_is_refused_as_the_spec_says(mesh, client):
    """The spec's header is a plain UUID; a client that sends it empty hears so."""
    headers = {"authorization": client.get_httpx_client().headers["authorization"], "idempotency-key": ""}
    response = httpx.post(f"{mesh.envoy_url}/v1/generations", json={"prompt": "x"}, headers=headers, timeout=10)
    assert response.status_code == 400
    bad_request = next(d for d in response.json()["details"] if d["@type"].endswith("BadRequest"))
    [violation] = bad_request["fieldViolations"]
    assert (violation["field"], violation["description"]) == ("Idempotency-Key", "must be a UUID")
