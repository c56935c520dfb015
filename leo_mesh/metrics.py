"""Every Prometheus metric the mesh exports, in one place.

Each service process registers all of them (a metric a process never touches
stays at zero or without samples), so dashboards and alerts can be checked
against one list. Names carry their unit, as Prometheus' conventions ask.

A gauge's `multiprocess_mode` says how the api_server's worker processes'
values add up on its one port (leo_mesh.telemetry.exposition): what each
process holds is summed over the live ones; what each reads from the
database (the same for all) is the largest live one.

The queue's gauges (`ScrapedGauge`) are not kept between scrapes: the
process serving /metrics reads them from the database when scraped
(leo_mesh.telemetry.queue), so a label value (an owner, a pool of workers)
shows only while it is current.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# From a create to its final state: seconds (a fast mock) to minutes (retries).
LIFETIME_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@dataclass(frozen=True)
class ScrapedGauge:
    """A gauge whose series are made anew at each scrape."""

    name: str
    documentation: str
    labels: tuple[str, ...]

    def family(self, samples: Iterable[tuple[Iterable[str], float]] = ()) -> GaugeMetricFamily:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, value in samples:
            family.add_metric(list(values), value)
        return family


# --- gRPC servers (all three services) ---
RPC_STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", ["grpc_service", "grpc_method"])
RPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
RPC_LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of an RPC to its status (a stream: its whole life).",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS_S,
)

# --- generations (api_server, callback_server) ---
GENERATIONS_CREATED = Counter(
    "leo_generations_created_total", "Generations created (not repeats of an idempotent create).", ["model", "kind"]
)
GENERATIONS_FINISHED = Counter(
    "leo_generations_finished_total",
    "Generations that reached a final state: COMPLETE, FAILED or CANCELLED.",
    ["status", "model", "kind"],
)
GENERATION_LIFETIME = Histogram(
    "leo_generation_lifetime_seconds",
    "Time from a generation's create to its final state.",
    ["status"],
    buckets=LIFETIME_BUCKETS_S,
)

# --- dispatch (api_server) ---
DISPATCH_ATTEMPTS = Counter(
    "leo_dispatch_attempts_total", "StartGeneration calls to the AI, by gRPC code (OK: accepted).", ["grpc_code"]
)
DISPATCH_RETRIES = Counter(
    "leo_dispatch_retries_total", "Dispatches scheduled again after a failed StartGeneration.", ["grpc_code"]
)
DISPATCH_TIMEOUTS = Counter(
    "leo_dispatch_timeouts_total", "Dispatched generations that got no callback before their deadline."
)
BACKLOG_DUE = Gauge(
    "leo_dispatch_backlog_due", "PENDING generations due for (re)dispatch now.", multiprocess_mode="livemax"
)
BACKLOG_IN_FLIGHT = Gauge(
    "leo_dispatch_in_flight",
    "PENDING generations dispatched and waiting for the AI's callback.",
    multiprocess_mode="livemax",
)
BACKLOG_OLDEST_DUE_AGE = Gauge(
    "leo_dispatch_oldest_due_age_seconds",
    "How long the oldest due PENDING generation has been due (0: none).",
    multiprocess_mode="livemax",
)
PENDING_OLDEST_AGE = Gauge(
    "leo_generations_pending_oldest_age_seconds",
    "Age of the oldest PENDING generation since its create (0: none).",
    multiprocess_mode="livemax",
)

# --- the queue and the AI workers (api_server; read from the database at each scrape) ---
QUEUE_DEPTH = ScrapedGauge(
    "leo_queue_depth",
    "Generations waiting in the mesh's queue (phase QUEUED), by model, kind and priority.",
    ("model", "kind", "priority"),
)
QUEUE_OLDEST_WAIT = ScrapedGauge(
    "leo_queue_oldest_wait_seconds",
    "Time since the create of the oldest generation waiting in the queue, by model and kind (0: none waits).",
    ("model", "kind"),
)
WORKER_SLOTS = ScrapedGauge(
    "leo_worker_slots",
    "Slots of the live AI workers, by the models and kinds a worker serves (its pool) and by state: busy, free.",
    ("models", "kinds", "state"),
)
OWNER_RUNNING = ScrapedGauge(
    "leo_owner_running",
    "Generations of one owner on AI workers (starting, held or running), for the owners that have any.",
    ("owner",),
)
SCRAPED_GAUGES = (QUEUE_DEPTH, QUEUE_OLDEST_WAIT, WORKER_SLOTS, OWNER_RUNNING)
# --- callbacks (callback_server) ---
CALLBACK_RESULTS = Counter(
    "leo_callback_results_total",
    "CompleteGeneration calls by outcome: applied, duplicate, conflict, ignored, bad_token, invalid.",
    ["outcome"],
)

# --- watches (api_server) ---
WATCHES_OPEN = Gauge("leo_watch_streams_open", "Open WatchGeneration streams.", multiprocess_mode="livesum")

# --- webhooks (api_server) ---
WEBHOOK_DELIVERIES = Counter(
    "leo_webhook_deliveries_total", "Webhook delivery attempts by outcome: delivered, retry, failed.", ["outcome"]
)
WEBHOOK_LATENCY = Histogram(
    "leo_webhook_delivery_seconds", "Duration of one webhook POST attempt.", buckets=LATENCY_BUCKETS_S
)

# --- mock AI ---
MOCK_AI_JOBS_IN_FLIGHT = Gauge(
    "leo_mock_ai_jobs_in_flight",
    "Jobs the mock AI holds (queued, running or calling back).",
    multiprocess_mode="livesum",
)
MOCK_AI_JOBS_QUEUED = Gauge(
    "leo_mock_ai_jobs_queued", "Jobs waiting for a free slot of the mock AI.", multiprocess_mode="livesum"
)
MOCK_AI_STARTS = Counter(
    "leo_mock_ai_starts_total",
    "Jobs asked of the mock AI (alone or in a batch), by outcome: new, held (already its), refused (injected),"
    " no_room (full or draining), wrong_worker (meant for another worker).",
    ["outcome"],
)

# --- database pool (api_server, callback_server) ---
DB_POOL_IN_USE = Gauge(
    "leo_db_pool_connections_in_use", "Database connections checked out of the pool.", multiprocess_mode="livesum"
)
DB_POOL_WAITING = Gauge(
    "leo_db_pool_requests_waiting", "Requests waiting for a database connection.", multiprocess_mode="livesum"
)
