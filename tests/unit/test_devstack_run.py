"""What `make run` decides before it starts anything: which ports and which
PostgreSQL (devstack.settings), who holds the run directory and its kept
link-signing key (devstack.run_dir), and the line for other terminals."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from devstack.__main__ import paste_line
from devstack.mesh import Mesh, Ports
from devstack.run_dir import AlreadyRunning, RunDir
from devstack.settings import WORKER_PORT_STEP, DevStackSettings

PORT_VARIABLES = [name for name, _ in Ports().by_variable()]


@pytest.fixture
def clean_env(monkeypatch):
    for name in [*PORT_VARIABLES, "DATABASE_URL", "EMBEDDED_POSTGRES_PORT", "LEO_DEV_RUN_DIR"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_every_port_comes_from_its_variable(clean_env):
    defaults = Ports()
    step = WORKER_PORT_STEP
    assert DevStackSettings().ports() == dataclasses.replace(
        defaults,
        ai=[defaults.ai[0], defaults.ai[0] + step],
        ai_metrics=[defaults.ai_metrics[0], defaults.ai_metrics[0] + step],
    )
    for offset, name in enumerate(PORT_VARIABLES):
        clean_env.setenv(name, str(20_000 + 100 * offset))
    clean_env.setenv("LEO_DEV_AI_WORKERS", "3")
    ports = DevStackSettings().ports()
    assert ports.by_variable() == [
        entry
        for offset, name in enumerate(PORT_VARIABLES)
        for entry in (
            [(name, 20_000 + 100 * offset)]
            if not name.startswith("MOCK_AI_")
            else [(name, 20_000 + 100 * offset)]
            + [(f"{name} of worker {k + 1}", 20_000 + 100 * offset + k * step) for k in (1, 2)]
        )
    ]


def test_a_port_out_of_range_is_refused(clean_env):
    clean_env.setenv("ENVOY_LISTEN_PORT", "70000")
    with pytest.raises(ValueError, match="envoy_listen_port"):
        DevStackSettings()


def test_the_embedded_postgresql_unless_database_url_names_another(clean_env, tmp_path):
    clean_env.setenv("LEO_DEV_RUN_DIR", str(tmp_path))
    clean_env.setenv("EMBEDDED_POSTGRES_PORT", "20999")
    embedded = DevStackSettings().embedded_postgres()
    assert embedded is not None and embedded.port == 20999 and embedded.data_dir == tmp_path / "postgres"
    # The line make run prints for other terminals sets DATABASE_URL to it.
    clean_env.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:20999/leo")
    assert DevStackSettings().embedded_postgres() is not None
    clean_env.setenv("DATABASE_URL", "postgresql://leo@db.example:5432/leo")
    assert DevStackSettings().embedded_postgres() is None


def test_one_claim_of_a_run_directory_at_a_time(tmp_path):
    run_dir = RunDir(tmp_path)
    running = rf"^already running \(pid {os.getpid()}, ports 1 A\)$"
    with run_dir.claim("ports 1 A"), pytest.raises(AlreadyRunning, match=running), RunDir(tmp_path).claim("ports 2 B"):
        pass
    with run_dir.claim("ports 2 B"):
        assert (tmp_path / "make-run.pid").read_text() == f"pid {os.getpid()}, ports 2 B\n"


def test_the_claim_of_a_process_that_died_is_gone_with_it(tmp_path):
    holder = (
        "import os, sys, pathlib; from devstack.run_dir import RunDir; "
        "claim = RunDir(pathlib.Path(sys.argv[1])).claim('ports 1 A'); claim.__enter__(); os._exit(9)"
    )
    assert subprocess.run([sys.executable, "-c", holder, str(tmp_path)], check=False).returncode == 9
    assert (tmp_path / "make-run.pid").read_text().endswith(", ports 1 A\n")
    with RunDir(tmp_path).claim("ports 3 C"):
        pass


def test_the_signing_key_is_made_once_and_kept_private(tmp_path):
    run_dir = RunDir(tmp_path)
    key = run_dir.signing_key()
    assert len(key) >= 43
    assert RunDir(tmp_path).signing_key() == key
    assert run_dir.signing_key_path.stat().st_mode & 0o777 == 0o600


def test_the_pasted_line_sets_what_the_examples_use(tmp_path):
    line = paste_line(Ports(envoy=18080), "leo_k'ey", "postgresql://postgres@127.0.0.1:54329/leo")
    shown = subprocess.run(
        ["bash", "-c", f'{line}\nprintf "%s\\n" "${{PATH%%:*}}" "$LEO_API_TARGET" "$LEO_API_KEY" "$DATABASE_URL"'],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert shown == [
        os.path.dirname(sys.executable),
        "127.0.0.1:18080",
        "leo_k'ey",
        "postgresql://postgres@127.0.0.1:54329/leo",
    ]


def test_each_process_gets_the_environment_with_what_make_run_decided_set_over_it(clean_env, tmp_path):
    for name, value in {
        "CALLBACK_SERVER_ADDRESS": "elsewhere:2",
        "DATABASE_URL": "postgresql://elsewhere/other",
        "MEDIA_PUBLIC_BASE_URL": "https://media.example",
        "LOG_LEVEL": "DEBUG",
    }.items():
        clean_env.setenv(name, value)
    ports = Ports.free()
    mesh = Mesh("postgresql://postgres@127.0.0.1:1/leo", tmp_path, ports=ports, env={"API_SERVER_WORKERS": "3"})

    def env_of(process) -> dict[str, str]:
        return {**os.environ, **process.env}  # as ManagedProcess starts it

    (api,) = mesh.api_servers
    ai, callback = env_of(mesh.mock_ai), env_of(mesh.callback_server)
    assert ai["CALLBACK_SERVER_ADDRESS"] == f"127.0.0.1:{ports.callback}"
    assert (env_of(api)["API_SERVER_PORT"], env_of(api)["API_SERVER_METRICS_PORT"]) == (
        str(ports.api[0]),
        str(ports.api_metrics[0]),
    )
    assert (ai["MOCK_AI_PORT"], callback["CALLBACK_SERVER_PORT"]) == (str(ports.ai[0]), str(ports.callback))
    for env in (env_of(api), ai, callback):
        assert env["DATABASE_URL"] == "postgresql://postgres@127.0.0.1:1/leo"
        assert env["LOG_LEVEL"] == "DEBUG"  # the rest passes as it is
        assert env["MEDIA_PUBLIC_BASE_URL"] == "https://media.example"  # set: kept
        assert env["MEDIA_LOCAL_DIR"] == str(tmp_path / "media")  # unset: the run's
    assert env_of(api)["API_SERVER_WORKERS"] == "3"
