"""mock_ai_server settings, read from environment variables (see README)."""

from __future__ import annotations

from pydantic import Field, model_validator

from leo_mesh.settings import CommonSettings


class Settings(CommonSettings):
    mock_ai_port: int = 50052
    # /metrics (Prometheus), on LISTEN_HOST; 0: any free port.
    mock_ai_metrics_port: int = Field(9092, ge=0, le=65535)
    callback_server_address: str = "127.0.0.1:50053"

    mock_ai_min_delay_s: float = Field(4.0, ge=0)
    mock_ai_max_delay_s: float = Field(8.0, ge=0)
    mock_ai_images_per_generation: int = Field(2, ge=1, le=16)
    # Jobs running at once; the others wait in a queue (first come, first served).
    mock_ai_max_concurrent_jobs: int = Field(100, ge=1)
    # Threads that render images (Pillow releases the GIL for most of it).
    mock_ai_render_threads: int = Field(2, ge=1)
    # A VIDEO generation's animation: this many frames at this many a second.
    mock_ai_video_frames: int = Field(16, ge=2, le=240)
    mock_ai_video_fps: int = Field(8, ge=1, le=60)
    # Progress reports (queue position, percent): on or off, and at most one
    # batch (so one update per generation) per interval.
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
