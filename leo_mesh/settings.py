"""What every process of the mesh reads from its environment.

Each service's settings class extends one of these; Alembic's env.py, the
migrate command, the keys CLI and the dev stack read them too. Environment
variables are read only through settings classes.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/leo"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    listen_host: str = "127.0.0.1"
    log_level: str = "INFO"


class DatabaseSettings(CommonSettings):
    """What the processes that use the database read (the mock AI has none)."""

    database_url: str = DEFAULT_DATABASE_URL


class QueueSettings(BaseSettings):
    """What the api_server (dispatch) and the callback_server (heartbeats,
    progress) agree on about the AI workers (docs/dispatch.md)."""

    model_config = SettingsConfigDict(extra="ignore")

    # How long a generation may run on a worker, counted from its start there
    # (time in the queue never counts), before it is given to another.
    completion_deadline_s: float = Field(120.0, gt=0)
    # A worker counts as gone, and its generations go back to the queue,
    # when no heartbeat has renewed its lease for this long.
    worker_lease_s: float = Field(3.0, gt=0)


class TracingSettings(BaseSettings):
    """The standard OpenTelemetry variables that decide whether a process
    traces (leo_mesh.telemetry.tracing): only with an OTLP endpoint. The SDK
    reads the others itself (OTEL_TRACES_SAMPLER, OTEL_RESOURCE_ATTRIBUTES,
    OTEL_BSP_*, …)."""

    model_config = SettingsConfigDict(extra="ignore")

    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None
    # Unset: the service's own name (api-server, mock-ai-server, callback-server).
    otel_service_name: str | None = None
    otel_sdk_disabled: bool = False
    # "none" turns the exporter, and so tracing, off.
    otel_traces_exporter: str = "otlp"

    @property
    def enabled(self) -> bool:
        endpoint = self.otel_exporter_otlp_traces_endpoint or self.otel_exporter_otlp_endpoint
        return bool(endpoint) and not self.otel_sdk_disabled and self.otel_traces_exporter != "none"
