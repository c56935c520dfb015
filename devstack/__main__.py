"""`make run`: the whole mesh on this machine, stopped cleanly by Ctrl-C.

Starts embedded PostgreSQL unless DATABASE_URL is set, migrates it, starts
callback_server, mock_ai_server, api_server and Envoy on the default ports,
and prints what is where. Logs go to .run/logs/.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import psycopg

from devstack.mesh import Mesh
from devstack.postgres import EmbeddedPostgres
from devstack.settings import DevStackSettings
from leo_mesh.db import migrate
from leo_mesh.media.settings import MediaSettings

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / ".run"
DATABASE = "leo"
DEV_OWNER = "dev"


def _ensure_database(postgres: EmbeddedPostgres) -> str:
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
            postgres.create_database(DATABASE)
    return postgres.url(DATABASE)


def media_env(run_dir: Path) -> dict[str, str]:
    """Generated files under .run/media unless MEDIA_LOCAL_DIR says otherwise."""
    return {} if "local_dir" in MediaSettings().model_fields_set else {"MEDIA_LOCAL_DIR": str(run_dir / "media")}


def main() -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    settings = DevStackSettings()
    postgres = None
    database_url = settings.database_url
    if not database_url:
        postgres = EmbeddedPostgres(RUN_DIR / "postgres", settings.embedded_postgres_port)
        postgres.start()
        database_url = _ensure_database(postgres)
    mesh = Mesh(
        database_url,
        RUN_DIR / "logs",
        env={"API_SERVER_WORKERS": str(settings.workers()), **media_env(RUN_DIR)},
    )
    try:
        migrate.upgrade(database_url)
        api_key = mesh.create_api_key(DEV_OWNER, settings.leo_dev_api_key or None)
        mesh.start()
        ports = mesh.ports
        print(
            f"""
Leo generation mesh is running (logs in {RUN_DIR / "logs"}):
  JSON/HTTP and gRPC via Envoy  http://127.0.0.1:{ports.envoy}
  Envoy admin                   http://127.0.0.1:{ports.envoy_admin}
  api_server (gRPC)             127.0.0.1:{ports.api[0]} ({settings.workers()} worker processes)
  mock_ai_server (gRPC)         127.0.0.1:{ports.ai}
  callback_server (gRPC)        127.0.0.1:{ports.callback}
  generated files               {mesh.media_dir}
  metrics (Prometheus)          http://127.0.0.1:{ports.api_metrics[0]}/metrics (api_server)
                                http://127.0.0.1:{ports.ai_metrics}/metrics (mock_ai_server)
                                http://127.0.0.1:{ports.callback_metrics}/metrics (callback_server)
  PostgreSQL                    {database_url}
  API key of owner "{DEV_OWNER}"            {api_key}
    (export LEO_API_KEY={api_key} for the README's examples;
     set LEO_DEV_API_KEY to keep the same key across runs)
Press Ctrl-C to stop.""",
            flush=True,
        )
        while not stop.wait(0.5):
            dead = [p.name for p in mesh.processes() if not p.running()]
            if dead:
                print(f"{', '.join(dead)} exited; stopping (see {RUN_DIR / 'logs'})", file=sys.stderr)
                return 1
        return 0
    finally:
        print("stopping…", flush=True)
        mesh.stop()
        if postgres is not None:
            postgres.stop()
        print("stopped.", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
