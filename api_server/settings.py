"""api_server settings, read from environment variables (see README)."""

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/leo"
    listen_host: str = "127.0.0.1"
    api_server_port: int = 50051
    ai_server_address: str = "127.0.0.1:50052"
    log_level: str = "INFO"

    # How many PENDING generations one owner may have at once.
    max_pending_per_owner: int = Field(100, ge=1)

    dispatch_max_attempts: int = Field(5, ge=1)
    dispatch_backoff_base_s: float = Field(1.0, gt=0)
    dispatch_backoff_cap_s: float = Field(60.0, gt=0)
    # Deadline of one StartGeneration call.
    dispatch_rpc_timeout_s: float = Field(5.0, gt=0)
    # How often the dispatcher looks for due rows when nothing woke it.
    dispatch_poll_interval_s: float = Field(1.0, gt=0)
    dispatch_batch_size: int = Field(100, ge=1)
    # How long a dispatched generation may wait for its callback.
    completion_deadline_s: float = Field(120.0, gt=0)

    # WatchGeneration: a stream whose message is not written within this
    # (the peer grants no flow-control window) is dropped.
    watch_write_timeout_s: float = Field(10.0, gt=0)
    # How many watchers of this process read the database at once (the pool holds 10 to 20 connections).
    watch_max_concurrent_reads: int = Field(5, ge=1)
    # Delays before re-opening a dropped LISTEN connection (backoff with full jitter).
    watch_reconnect_base_s: float = Field(0.5, gt=0)
    watch_reconnect_cap_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _cap_not_below_base(self):
        if self.dispatch_backoff_cap_s < self.dispatch_backoff_base_s:
            raise ValueError("DISPATCH_BACKOFF_CAP_S must be at least DISPATCH_BACKOFF_BASE_S")
        return self

    @property
    def claim_lease_s(self) -> float:
        """How long a claimed row stays invisible to other dispatchers while
        its StartGeneration is in flight."""
        return 2 * self.dispatch_rpc_timeout_s + 5
