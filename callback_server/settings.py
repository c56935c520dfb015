"""callback_server settings, read from environment variables (see README)."""

from __future__ import annotations

from pydantic import Field

from leo_mesh.settings import DatabaseSettings, QueueSettings


class Settings(DatabaseSettings, QueueSettings):
    callback_server_port: int = 50053
    # /metrics (Prometheus), on LISTEN_HOST; 0: any free port.
    callback_server_metrics_port: int = Field(9093, ge=0, le=65535)
    # Database connections of this process, and how many calls may queue for one.
    db_pool_size: int = Field(10, ge=1)
    db_max_waiting: int = Field(200, ge=1)
