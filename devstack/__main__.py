"""`make run`: the whole mesh on this machine, stopped cleanly by Ctrl-C.

Claims the run directory (one `make run` per directory), checks that every
port it is set to use is free, starts the embedded PostgreSQL unless
DATABASE_URL names another, migrates it, starts callback_server,
mock_ai_server, api_server and Envoy, and prints what is where, with one
line to paste into another terminal for the README's examples. Logs go to
the run directory's logs/.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from pathlib import Path

import psycopg
from pydantic import ValidationError

from devstack.mesh import Mesh, Ports
from devstack.ports import in_use
from devstack.postgres import EmbeddedPostgres
from devstack.run_dir import AlreadyRunning, RunDir
from devstack.settings import DATABASE, DevStackSettings
from leo_mesh import envoy_console
from leo_mesh.db import migrate
from leo_mesh.media.settings import MediaSettings

DEV_OWNER = "dev"


def _ensure_database(postgres: EmbeddedPostgres) -> str:
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
            postgres.create_database(DATABASE)
    return postgres.url(DATABASE)


def media_env(run_dir: RunDir) -> dict[str, str]:
    """Generated files in the run directory, links signed with its kept key:
    unless the environment says otherwise."""
    given = MediaSettings().model_fields_set
    env = {} if "local_dir" in given else {"MEDIA_LOCAL_DIR": str(run_dir.media)}
    if "url_signing_key" not in given:
        env["MEDIA_URL_SIGNING_KEY"] = run_dir.signing_key()
    return env


def paste_line(ports: Ports, api_key: str, database_url: str) -> str:
    """The line that gives another terminal what the README's examples use:
    this venv's commands (leo, python, grpcurl) first on PATH, the API's
    address and key, and the database (for `python -m api_server.keys`)."""
    venv_bin = shlex.quote(str(Path(sys.executable).parent))
    variables = {
        "LEO_API_TARGET": f"127.0.0.1:{ports.envoy}",
        "LEO_API_KEY": api_key,
        "DATABASE_URL": database_url,
    }
    assigned = " ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items())
    return f'export PATH={venv_bin}:"$PATH" {assigned}'


def console_url(ports: Ports) -> str:
    """Where Envoy serves the web console (leo_mesh/envoy_console.py)."""
    return f"http://127.0.0.1:{ports.envoy}{envoy_console.PREFIX}"


def _planned(ports: Ports, postgres: EmbeddedPostgres | None) -> list[tuple[str, int]]:
    """Every port make run will listen on, with the variable that sets it."""
    return ports.by_variable() + ([("EMBEDDED_POSTGRES_PORT", postgres.port)] if postgres else [])


def _metrics(port: int) -> str:
    return f"http://127.0.0.1:{port}/metrics" if port else "any free port (see its log)"


def main() -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    try:
        settings = DevStackSettings()
    except ValidationError as invalid:
        for error in invalid.errors():
            print(f"make run: {str(error['loc'][0]).upper()}: {error['msg']}", file=sys.stderr)
        return 2
    run_dir = RunDir(settings.leo_dev_run_dir)
    ports = settings.ports()
    postgres = settings.embedded_postgres()
    planned = _planned(ports, postgres)
    try:
        with run_dir.claim("ports " + ", ".join(f"{port} {name}" for name, port in planned if port)):
            busy = in_use(planned)
            for port in busy:
                print(f"make run: {port}", file=sys.stderr)
            if busy:
                return 1
            return _run(settings, run_dir, ports, postgres, stop)
    except AlreadyRunning as running:
        print(f"make run: {running} in {run_dir.path}", file=sys.stderr)
        return 1


def _run(
    settings: DevStackSettings, run_dir: RunDir, ports: Ports, postgres: EmbeddedPostgres | None, stop: threading.Event
) -> int:
    database_url = settings.database_url or ""
    mesh: Mesh | None = None
    try:
        if postgres is not None:
            print(f"starting PostgreSQL (data in {postgres.data_dir})…", flush=True)
            postgres.start()
            database_url = _ensure_database(postgres)
        mesh = Mesh(
            database_url,
            run_dir.logs,
            ports=ports,
            env={"API_SERVER_WORKERS": str(settings.workers()), **media_env(run_dir)},
        )
        migrate.upgrade(database_url)
        api_key = mesh.create_api_key(DEV_OWNER, settings.leo_dev_api_key or None)
        print(f"starting callback_server, {len(ports.ai)} AI workers, api_server and Envoy…", flush=True)
        mesh.start()
        print(
            f"""
Leo generation mesh is running (logs in {run_dir.logs}):
  web console                   {console_url(ports)} (sign in with the key below)
  JSON/HTTP and gRPC via Envoy  http://127.0.0.1:{ports.envoy}
  Envoy admin                   http://127.0.0.1:{ports.envoy_admin}
  api_server (gRPC)             127.0.0.1:{ports.api[0]} ({settings.workers()} worker processes)
  AI workers (mock_ai_server)    {", ".join(f"127.0.0.1:{port}" for port in ports.ai)}
  callback_server (gRPC)        127.0.0.1:{ports.callback}
  generated files               {mesh.media_dir}
  metrics (Prometheus)          {_metrics(ports.api_metrics[0])} (api_server)
                                {", ".join(_metrics(port) for port in ports.ai_metrics)} (AI workers)
                                {_metrics(ports.callback_metrics)} (callback_server)
  PostgreSQL                    {database_url}
  API key of owner "{DEV_OWNER}"            {api_key}
    (set LEO_DEV_API_KEY to keep the same key across runs)

For the README's examples, paste this line into another terminal:

{paste_line(ports, api_key, database_url)}

Press Ctrl-C to stop.""",
            flush=True,
        )
        while not stop.wait(0.5):
            dead = [p.name for p in mesh.processes() if not p.running()]
            if dead:
                print(f"{', '.join(dead)} exited; stopping (see {run_dir.logs})", file=sys.stderr)
                return 1
        return 0
    finally:
        print("stopping…", flush=True)
        if mesh is not None:
            mesh.stop()
        if postgres is not None:
            postgres.stop()
        print("stopped.", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
