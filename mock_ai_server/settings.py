"""mock_ai_server settings, read from environment variables (see README)."""

from __future__ import annotations

import socket

from pydantic import Field, ValidationInfo, field_validator, model_validator

from leo_mesh.rules import Kind, Model
from leo_mesh.settings import CommonSettings


class Settings(CommonSettings):
    mock_ai_port: int = 50052
    # /metrics (Prometheus), on LISTEN_HOST; 0: any free port.
    mock_ai_metrics_port: int = Field(9092, ge=0, le=65535)
    callback_server_address: str = "127.0.0.1:50053"

    # The worker in the pool (its heartbeats declare these): jobs it runs at
    # once, jobs it takes beyond them (each waits for the next free slot),
    # and what it serves (comma-separated names).
    mock_ai_slots: int = Field(4, ge=1, le=1024)
    mock_ai_prefetch: int = Field(1, ge=0, le=1024)
    mock_ai_models: str = "SD,SDXL"
    mock_ai_kinds: str = "IMAGE,VIDEO"
    # Where the mesh reaches this worker (host:port); unset: LISTEN_HOST and
    # the port it listens on (the machine's hostname if it listens on all).
    mock_ai_advertise_address: str | None = None
    # A heartbeat this often; the mesh's lease (WORKER_LEASE_S) must be longer.
    mock_ai_heartbeat_interval_s: float = Field(1.0, gt=0)
    # On SIGTERM: how long it finishes the jobs it runs (it takes no new one; 0: not at all).
    mock_ai_drain_timeout_s: float = Field(60.0, ge=0)

    mock_ai_min_delay_s: float = Field(4.0, ge=0)
    mock_ai_max_delay_s: float = Field(8.0, ge=0)
    mock_ai_images_per_generation: int = Field(2, ge=1, le=16)
    # Threads that render images (Pillow releases the GIL for most of it).
    mock_ai_render_threads: int = Field(2, ge=1)
    # A VIDEO generation's animation: this many frames at this many a second.
    mock_ai_video_frames: int = Field(16, ge=2, le=240)
    mock_ai_video_fps: int = Field(8, ge=1, le=60)
    # Progress reports (percent done): on or off, and at most one batch (so
    # one update per generation) per interval.
    mock_ai_progress_reports: bool = True
    mock_ai_progress_interval_s: float = Field(0.25, gt=0)

    # Failure injection.
    mock_ai_start_failure_rate: float = Field(0.0, ge=0, le=1)
    # The first N StartGeneration calls of each generation answer UNAVAILABLE.
    mock_ai_start_failures_per_generation: int = Field(0, ge=0)
    mock_ai_generation_failure_rate: float = Field(0.0, ge=0, le=1)
    mock_ai_callback_drop_rate: float = Field(0.0, ge=0, le=1)

    # Callback delivery retries until acknowledged.
    mock_ai_callback_backoff_base_s: float = Field(0.2, gt=0)
    mock_ai_callback_backoff_cap_s: float = Field(5.0, gt=0)
    mock_ai_callback_timeout_s: float = Field(5.0, gt=0)
    mock_ai_callback_give_up_s: float = Field(3600.0, gt=0)
    mock_ai_max_concurrent_callbacks: int = Field(50, ge=1)
    # A callback refused for its token waits this long for a newer dispatch's
    # token (its StartGeneration may still be on the way) before giving up.
    mock_ai_stale_token_grace_s: float = Field(2.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Settings:
        if self.mock_ai_max_delay_s < self.mock_ai_min_delay_s:
            raise ValueError("MOCK_AI_MAX_DELAY_S must be at least MOCK_AI_MIN_DELAY_S")
        return self

    @field_validator("mock_ai_models", "mock_ai_kinds")
    @classmethod
    def _names(cls, value: str, info: ValidationInfo) -> str:
        known = Model if info.field_name == "mock_ai_models" else Kind
        names = [name.strip().upper() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in known.__members__]
        if not names or unknown:
            raise ValueError(f"must name one or more of {', '.join(known.__members__)}, comma-separated")
        return ",".join(names)

    @property
    def models(self) -> frozenset[Model]:
        return frozenset(Model(name) for name in self.mock_ai_models.split(","))

    @property
    def kinds(self) -> frozenset[Kind]:
        return frozenset(Kind(name) for name in self.mock_ai_kinds.split(","))

    def advertise_address(self, port: int) -> str:
        """Where the mesh reaches this worker, once it listens on `port`."""
        if self.mock_ai_advertise_address:
            return self.mock_ai_advertise_address
        host = socket.gethostname() if self.listen_host in ("0.0.0.0", "::", "") else self.listen_host
        return f"{host}:{port}"
