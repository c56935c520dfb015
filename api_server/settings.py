"""api_server settings, read from environment variables (see README)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from leo_mesh.rules import RetryPolicy
from leo_mesh.settings import DatabaseSettings, QueueSettings

# How long a webhook's host may take to resolve.
RESOLVE_TIMEOUT_S = 2.0


class Settings(DatabaseSettings, QueueSettings):
    api_server_port: int = 50051
    # /metrics (Prometheus), on LISTEN_HOST; 0: any free port. With several
    # workers, the supervising process serves their sum here.
    api_server_metrics_port: int = Field(9091, ge=0, le=65535)
    # Processes serving the port together (SO_REUSEPORT); each is a full
    # api_server (its own pool, dispatcher, change feed), like a replica.
    api_server_workers: int = Field(1, ge=1, le=64)

    # How many PENDING generations one owner may have at once.
    max_pending_per_owner: int = Field(100, ge=1)
    # How many of them may be on AI workers at once (starting or running);
    # the rest wait in the queue, while other owners' generations go by.
    max_running_per_owner: int = Field(32, ge=1)

    dispatch_max_attempts: int = Field(5, ge=1)
    dispatch_backoff_base_s: float = Field(1.0, gt=0)
    dispatch_backoff_cap_s: float = Field(60.0, gt=0)
    # Deadline of one StartGenerations call to a worker.
    dispatch_rpc_timeout_s: float = Field(5.0, gt=0)
    # How often the dispatcher looks at the queue when nothing woke it.
    dispatch_poll_interval_s: float = Field(1.0, gt=0)
    # Generations handed out in one round at most.
    dispatch_batch_size: int = Field(100, ge=1)
    # A queued generation's estimated start and completion: how long a
    # generation takes when none of its model and kind completed lately.
    queue_default_duration_s: float = Field(6.0, gt=0)
    # How old the queue's picture (places, estimates) may be when read.
    queue_snapshot_s: float = Field(0.5, gt=0)
    # How old the queue's gauges (leo_queue_*, leo_worker_slots,
    # leo_owner_running) may be when scraped: the database is read for them
    # at most this often (0: at every scrape).
    queue_metrics_max_age_s: float = Field(5.0, ge=0)

    # Database connections of this process, and how many calls may queue for one.
    db_pool_size: int = Field(10, ge=1)
    db_max_waiting: int = Field(200, ge=1)

    # How long an API key's owner is remembered; a revocation ends it at once
    # on every replica (NOTIFY), this bounds it if the notification is lost.
    auth_cache_ttl_s: float = Field(5.0, ge=0)

    # WatchGeneration: a stream whose message is not written within this
    # (the peer grants no flow-control window) is dropped.
    watch_write_timeout_s: float = Field(10.0, gt=0)
    # Delays before re-opening a dropped LISTEN connection (backoff with full jitter).
    watch_reconnect_base_s: float = Field(0.5, gt=0)
    watch_reconnect_cap_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> Settings:
        if self.dispatch_backoff_cap_s < self.dispatch_backoff_base_s:
            raise ValueError("DISPATCH_BACKOFF_CAP_S must be at least DISPATCH_BACKOFF_BASE_S")
        return self

    @property
    def dispatch_retry(self) -> RetryPolicy:
        return RetryPolicy(self.dispatch_max_attempts, self.dispatch_backoff_base_s, self.dispatch_backoff_cap_s)

    @property
    def start_lease_s(self) -> float:
        """How long a generation sent to a worker waits for the worker's
        acknowledgement (the call's, or its next heartbeat's) before the
        dispatcher sends it to that worker again."""
        return self.dispatch_rpc_timeout_s + 2 * self.worker_lease_s


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WEBHOOK_", extra="ignore")

    max_attempts: int = Field(6, ge=1)
    backoff_base_s: float = Field(2.0, gt=0)
    backoff_cap_s: float = Field(300.0, gt=0)
    # Deadline of one POST, connecting included.
    timeout_s: float = Field(10.0, gt=0)
    poll_interval_s: float = Field(1.0, gt=0)
    # Lets webhook URLs reach loopback and private networks (tests, dev).
    allow_private_urls: bool = False

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> WebhookSettings:
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("WEBHOOK_BACKOFF_CAP_S must be at least WEBHOOK_BACKOFF_BASE_S")
        return self

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.backoff_base_s, self.backoff_cap_s)

    @property
    def claim_lease_s(self) -> float:
        """How long a claimed delivery stays invisible to other senders while
        its attempt (address check and POST) is in flight."""
        return 2 * (RESOLVE_TIMEOUT_S + self.timeout_s) + 5
