"""What `make run` reads from its environment. The ports are the services'
own variables (API_SERVER_PORT, ENVOY_LISTEN_PORT, …): `make run` hands
each process the port it was given, so every port is set in one place."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field

from devstack.mesh import Ports
from devstack.postgres import EmbeddedPostgres
from leo_mesh.settings import DatabaseSettings

ROOT = Path(__file__).resolve().parents[1]
# The database of make run's embedded PostgreSQL.
DATABASE = "leo"
_DEFAULT = Ports()
Port = Annotated[int, Field(ge=1, le=65535)]
# 0: any free port, as the services take it.
MetricsPort = Annotated[int, Field(ge=0, le=65535)]
# The ports of the pool's next worker, above those of the one before.
WORKER_PORT_STEP = 10


class DevStackSettings(DatabaseSettings):
    # Unset, or the address of make run's own embedded PostgreSQL (the line
    # make run prints for other terminals sets it): make run starts that
    # PostgreSQL, on this port, with its data in the run directory.
    database_url: str | None = None  # type: ignore[assignment]
    embedded_postgres_port: Port = 54329
    # What make run keeps between runs: the database, logs, generated files,
    # the link-signing key, and the lock that says it is running.
    leo_dev_run_dir: Path = ROOT / ".run"
    # The dev owner's API key (kept across runs when set).
    leo_dev_api_key: str | None = None
    # Unset: one api_server worker process per core, at most 4.
    api_server_workers: int | None = None
    # AI workers in the pool; worker k (from 0) listens on MOCK_AI_PORT + 10k
    # and serves /metrics on MOCK_AI_METRICS_PORT + 10k.
    leo_dev_ai_workers: int = Field(2, ge=1, le=16)

    envoy_listen_port: Port = _DEFAULT.envoy
    envoy_admin_port: Port = _DEFAULT.envoy_admin
    api_server_port: Port = _DEFAULT.api[0]
    mock_ai_port: Port = _DEFAULT.ai[0]
    callback_server_port: Port = _DEFAULT.callback
    api_server_metrics_port: MetricsPort = _DEFAULT.api_metrics[0]
    mock_ai_metrics_port: MetricsPort = _DEFAULT.ai_metrics[0]
    callback_server_metrics_port: MetricsPort = _DEFAULT.callback_metrics

    def workers(self) -> int:
        return self.api_server_workers or max(1, min(os.cpu_count() or 1, 4))

    def ports(self) -> Ports:
        return Ports(
            api=[self.api_server_port],
            ai=[self.mock_ai_port + WORKER_PORT_STEP * k for k in range(self.leo_dev_ai_workers)],
            callback=self.callback_server_port,
            envoy=self.envoy_listen_port,
            envoy_admin=self.envoy_admin_port,
            api_metrics=[self.api_server_metrics_port],
            ai_metrics=[
                self.mock_ai_metrics_port + WORKER_PORT_STEP * k if self.mock_ai_metrics_port else 0
                for k in range(self.leo_dev_ai_workers)
            ],
            callback_metrics=self.callback_server_metrics_port,
        )

    def embedded_postgres(self) -> EmbeddedPostgres | None:
        """The PostgreSQL make run starts, or None when DATABASE_URL names another."""
        postgres = EmbeddedPostgres(self.leo_dev_run_dir / "postgres", self.embedded_postgres_port)
        if self.database_url is None or self.database_url == postgres.url(DATABASE):
            return postgres
        return None
