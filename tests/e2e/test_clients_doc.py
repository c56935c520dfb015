"""docs/clients.md's examples run, as written, against a real stack: from a
folder laid out as the clone's root (protos/, gen/, buf.yaml, .venv and the
Node packages), with LEO_API_TARGET and LEO_API_KEY set. The browser
examples run in Node with the eventsource package as the page's EventSource."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.nodejs import NODE_DIR

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "clients.md").read_text()
FAST = {"MOCK_AI_MIN_DELAY_S": "0.3", "MOCK_AI_MAX_DELAY_S": "0.6"}
# What the clone's root has that the examples use.
LAYOUT = {"protos": ROOT / "protos", "gen": ROOT / "gen", "buf.yaml": ROOT / "buf.yaml", ".venv": ROOT / ".venv"}
# The headings whose blocks the tests below run, in order.
SECTIONS = [
    "grpcurl and buf curl",
    "Node",
    "EventSource, with a signed watch link",
    "fetch, with the key",
    "A client generated from the OpenAPI spec",
    "Other languages, with buf",
]
# A block in this language is a file shown, not run.
SHOWN = "yaml"


def blocks(heading: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block under the heading (## or ###), to the next heading of any level."""
    body = re.split(rf"\n#{{2,3}} {re.escape(heading)}\n", DOC, maxsplit=1)[1]
    body = re.split(r"\n#{2,3} ", body, maxsplit=1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", body, re.S)


def test_every_block_is_under_a_heading_that_is_run_and_only_the_bsr_one_is_not_run():
    every = re.findall(r"```(\w+)\n", DOC)
    run = [language for heading in SECTIONS for language, _ in blocks(heading)]
    assert sorted(run) == sorted(every)
    [shown] = [code for language, code in blocks("Other languages, with buf") if language == SHOWN]
    assert every.count(SHOWN) == 1 and "remote: buf.build/" in shown


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(env=FAST)


@pytest.fixture(scope="module")
def key(mesh) -> str:
    return mesh.create_api_key("reader")


@pytest.fixture
def clone(tmp_path) -> Path:
    """A folder that looks like the clone's root to the examples."""
    for name, target in {**LAYOUT, "node_modules": NODE_DIR / "node_modules"}.items():
        (tmp_path / name).symlink_to(target)
    return tmp_path


def env(mesh, key: str, **page: str) -> dict[str, str]:
    return {
        **{name: value for name, value in os.environ.items() if not name.startswith("LEO_API_")},
        "LEO_API_TARGET": f"127.0.0.1:{mesh.ports.envoy}",
        "LEO_API_KEY": key,
        **{f"PAGE_{name}": value for name, value in page.items()},
    }


def run(language: str, code: str, clone: Path, environment: dict[str, str]) -> str:
    """Runs one block in the clone; its output."""
    if language == "sh":
        command = ["bash", "-euo", "pipefail", "-c", code]
    elif language == "python":
        (clone / "example.py").write_text(code)
        command = [sys.executable, "example.py"]
    else:
        assert language == "js", language
        (clone / "example.mjs").write_text(code)
        command = ["node", "--import", str(NODE_DIR / "browser_globals.mjs"), "example.mjs"]
    done = subprocess.run(command, cwd=clone, env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def run_section(heading: str, clone: Path, environment: dict[str, str]) -> list[str]:
    """The output of each block of the section that is run."""
    return [run(language, code, clone, environment) for language, code in blocks(heading) if language != SHOWN]


def created(mesh, key: str) -> dict:
    with httpx.Client(base_url=mesh.envoy_url, headers={"authorization": f"Bearer {key}"}, timeout=10) as http:
        response = http.post("/v1/generations", json={"prompt": "a kite", "width": 64, "height": 64})
    assert response.status_code == 200, response.text
    return response.json()


def test_grpcurl_and_buf_curl_through_envoy(mesh, key, clone):
    created(mesh, key)
    [out] = run_section("grpcurl and buf curl", clone, env(mesh, key))
    assert out.count('"generations"') == 2


def test_node(mesh, key, clone):
    [out] = run_section("Node", clone, env(mesh, key))
    assert "STATUS_COMPLETE" in out and "/assets/0?expires=" in out
    assert "google.rpc.BadRequest" in out and "FIELD_VIOLATION" in out


def test_a_browser_event_source(mesh, key, clone):
    [out] = run_section(
        "EventSource, with a signed watch link", clone, env(mesh, key, watchUrl=created(mesh, key)["watchUrl"])
    )
    lines = out.splitlines()
    assert "STATUS_COMPLETE" in lines[-2] and lines[-1] == "done"


def test_a_browser_fetch_reader(mesh, key, clone):
    generation_id = created(mesh, key)["generation"]["generationId"]
    page = {"apiUrl": mesh.envoy_url, "apiKey": key, "generationId": generation_id}
    [out] = run_section("fetch, with the key", clone, env(mesh, key, **page))
    lines = out.splitlines()
    assert "STATUS_COMPLETE" in lines[-2] and lines[-1] == "done"


def test_a_generated_openapi_client(mesh, key, clone):
    _, out = run_section("A client generated from the OpenAPI spec", clone, env(mesh, key))
    assert out.splitlines()[0] == "STATUS_COMPLETE"
    assert out.splitlines()[1].startswith("3 ") and "fieldViolations" in out
    assert (clone / "lighthouse.png").read_bytes().startswith(b"\x89PNG")


def test_buf_generate(mesh, key, clone):
    [out] = run_section("Other languages, with buf", clone, env(mesh, key))
    assert "generation_pb2.pyi" in out.split()
