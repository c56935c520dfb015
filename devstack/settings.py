"""What `make run` reads from its environment (the services read their own)."""

from __future__ import annotations

import os

from leo_mesh.settings import DatabaseSettings


class DevStackSettings(DatabaseSettings):
    # Unset DATABASE_URL: `make run` starts an embedded PostgreSQL on this port.
    database_url: str | None = None  # type: ignore[assignment]
    embedded_postgres_port: int = 54329
    # The dev owner's API key (kept across runs when set).
    leo_dev_api_key: str | None = None
    # Unset: one api_server worker process per core, at most 4.
    api_server_workers: int | None = None

    def workers(self) -> int:
        return self.api_server_workers or max(1, min(os.cpu_count() or 1, 4))
