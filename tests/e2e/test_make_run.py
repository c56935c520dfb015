"""`make run` explains itself: it listens where its variables say, names a
busy port and its process before starting anything, says so when it is
already running, names a process that ends while starting with that run's
log, and keeps its link-signing key, so links outlive a restart."""

from __future__ import annotations

import os
import shlex
import socket
from pathlib import Path
from unittest import mock

import httpx
import pytest

from devstack.mesh import Mesh, Ports
from devstack.ports import in_use
from devstack.settings import DevStackSettings
from tests.clients import wait_for
from tests.make_run import PORT_VARIABLES, MakeRun
from tests.mesh_fixtures import new_migrated_database

FAST = {"MOCK_AI_MIN_DELAY_S": "0.2", "MOCK_AI_MAX_DELAY_S": "0.5"}


@pytest.fixture(scope="module")
def running(make_run) -> MakeRun:
    return make_run(FAST).start().wait_running()


def pasted(run: MakeRun) -> dict[str, str]:
    """The variables of the line it prints for other terminals."""
    export, *assignments = shlex.split(run.paste_line())
    assert export == "export"
    return dict(assignment.split("=", 1) for assignment in assignments)


@pytest.fixture
def held_port():
    """A port this test process listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_every_port_is_the_one_its_variable_sets(running):
    given = [(name, int(running.env[name])) for name in PORT_VARIABLES]
    holders = {busy.variable: busy.holder or "" for busy in in_use(given)}
    assert set(holders) == set(PORT_VARIABLES)
    owners = {
        "ENVOY": "envoy",
        "API_SERVER": "-m api_server",
        "MOCK_AI": "-m mock_ai_server",
        "CALLBACK": "-m callback_server",
    }
    for variable, holder in holders.items():
        [owner] = [process for prefix, process in owners.items() if variable.startswith(prefix)]
        assert owner in holder, (variable, holder)
    assert any(f"http://127.0.0.1:{running.env['ENVOY_LISTEN_PORT']}" in line for line in running.lines)
    assert pasted(running)["LEO_API_TARGET"] == f"127.0.0.1:{running.env['ENVOY_LISTEN_PORT']}"


def test_it_prints_where_the_web_console_is(running):
    [line] = [line for line in running.lines if "web console" in line]
    url = line.split()[2]
    assert url == f"http://127.0.0.1:{running.env['ENVOY_LISTEN_PORT']}/console/"
    page = httpx.get(url, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in page.headers


def test_a_second_make_run_says_it_is_already_running(running):
    second = MakeRun(running.env)
    assert second.run_to_end() == 1
    with mock.patch.dict(os.environ, running.env):  # every worker's ports, as make run plans them
        planned = DevStackSettings().ports().by_variable()
    ports = ", ".join(f"{port} {name}" for name, port in planned)
    run_dir = Path(running.env["LEO_DEV_RUN_DIR"]).resolve()
    assert second.stderr.splitlines() == [f"make run: already running (pid {running.pid}, ports {ports}) in {run_dir}"]
    assert second.lines == []
    assert running.running()


def test_a_busy_port_is_named_with_its_process_before_anything_starts(make_run, held_port):
    run = make_run({"CALLBACK_SERVER_METRICS_PORT": str(held_port)})
    assert run.run_to_end() == 1
    [line] = run.stderr.splitlines()
    assert line.startswith(
        f"make run: port {held_port} (CALLBACK_SERVER_METRICS_PORT) is in use by pid {os.getpid()} ("
    ), line
    assert line.endswith("): stop it or set CALLBACK_SERVER_METRICS_PORT to a free port")
    # It says what it starts before starting it: it started nothing.
    assert run.lines == []
    assert not (Path(run.env["LEO_DEV_RUN_DIR"]) / "logs").exists()


def test_a_process_that_ends_while_starting_is_named_at_once_with_this_runs_log(postgres, tmp_path, held_port):
    (tmp_path / "callback_server.log").write_text("a line of an earlier run\n")
    ports = Ports.free()
    ports.callback_metrics = held_port
    mesh = Mesh(new_migrated_database(postgres), tmp_path, ports=ports)
    with pytest.raises(RuntimeError) as failed:
        mesh.start()
    message = str(failed.value)
    assert message.startswith("callback_server exited with code 1; its log:\n"), message
    assert "Address already in use" in message
    assert "an earlier run" not in message
    assert not any(process.running() for process in mesh.processes())


def test_links_handed_out_before_a_restart_still_open(make_run):
    run = make_run(FAST).start().wait_running()
    reader = pasted(run)
    api = f"http://{reader['LEO_API_TARGET']}"
    headers = {"authorization": f"Bearer {reader['LEO_API_KEY']}"}
    with httpx.Client(base_url=api, headers=headers, timeout=10) as http:
        created = http.post("/v1/generations", json={"prompt": "kept across restarts", "width": 64, "height": 64})
        generation_id = created.json()["generation"]["generationId"]
        done = wait_for(
            lambda: (g := http.get(f"/v1/generations/{generation_id}").json()["generation"])["assets"] and g,
            what="the generation's files",
        )
    link = done["assets"][0]["url"]
    before = httpx.get(link, timeout=10)
    assert before.status_code == 200

    assert run.stop() == 0
    run.start().wait_running()
    after = httpx.get(link, timeout=10)
    assert after.status_code == 200, after.text
    assert after.content == before.content
    key = Path(run.env["LEO_DEV_RUN_DIR"]) / "url-signing-key"
    assert key.stat().st_mode & 0o777 == 0o600
