"""After a known flow through the real mesh, each process's /metrics shows
exactly what happened: creates (spread over two api_server worker
processes, whose numbers add up on their one port), dispatch attempts with
one injected refusal each, generations failed by the AI, a cancel, a watch
and a webhook that needed a retry. The database is the record of what
happened (attempts, statuses) that the numbers are compared with."""

from __future__ import annotations

import threading
from collections import Counter

import grpc
import psycopg

from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from tests.clients import Api, statuses, wait_for
from tests.scrape import Scrape
from tests.webhook_receiver import Receiver

FLOW = {
    "API_SERVER_WORKERS": "2",
    "MOCK_AI_START_FAILURES_PER_GENERATION": "1",
    "MOCK_AI_GENERATION_FAILURE_RATE": "0.5",
    # Long enough for a watch to be seen open, and a cancel to land while PENDING.
    "MOCK_AI_MIN_DELAY_S": "1",
    "MOCK_AI_MAX_DELAY_S": "1.5",
    "DISPATCH_POLL_INTERVAL_S": "0.1",
    "DISPATCH_BACKOFF_BASE_S": "0.1",
    "DISPATCH_BACKOFF_CAP_S": "0.2",
    "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
    "WEBHOOK_POLL_INTERVAL_S": "0.1",
    "WEBHOOK_BACKOFF_BASE_S": "0.1",
    "WEBHOOK_BACKOFF_CAP_S": "0.2",
}
N = 8
SIMULATED_FAILURE = "the model could not render this prompt (simulated failure)"
GENERATION_SERVICE = "leo.generation.v1.GenerationService"


def own_connection(address: str, key: str) -> Api:
    """A client on a connection of its own (the kernel spreads connections over the workers)."""
    api = Api(address, key)
    api.channel = grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
    api.stub = generation_pb2_grpc.GenerationServiceStub(api.channel)
    return api


def rows(database_url: str) -> list[tuple[str, str, int, str | None]]:
    """(status, model, attempts, failure reason) of every generation."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            'SELECT status::text, "coreModel"::text, attempts, "failureReason" FROM generations'
        ).fetchall()


def test_each_process_counts_exactly_what_the_flow_did(make_mesh):
    mesh = make_mesh(env=FLOW, with_envoy=False)
    (server,) = mesh.api_servers
    key = mesh.create_api_key("counted")
    clients = [own_connection(mesh.api_address, key) for _ in range(N)]
    secret_owner = clients[0]
    secret_owner.stub.RotateWebhookSecret(
        generation_pb2.RotateWebhookSecretRequest(), metadata=secret_owner.metadata, timeout=10
    )
    api_metrics = mesh.metrics_url(server)

    with Receiver({"/hook": [500]}) as receiver:
        # A watch, seen open while the generation is PENDING.
        watched = clients[0].create("watched", model=generation_pb2.MODEL_SD)
        stream = clients[0].stub.WatchGeneration(
            generation_pb2.WatchGenerationRequest(generation_id=watched.generation_id), metadata=clients[0].metadata
        )
        assert next(stream).generation.status == generation_pb2.STATUS_PENDING
        assert Scrape(api_metrics).value("leo_watch_streams_open") == 1
        watch_done = threading.Thread(target=lambda: list(stream))
        watch_done.start()

        cancelled = clients[1].create("cancelled at once")
        assert clients[1].cancel(cancelled.generation_id).status == generation_pb2.STATUS_CANCELLED
        clients[2].create("hooked", webhook_url=receiver.url())
        for index, client in enumerate(clients[3:], start=3):
            client.create(f"plain {index}", model=generation_pb2.MODEL_SD if index % 2 else generation_pb2.MODEL_SDXL)

        wait_for(lambda: "PENDING" not in statuses(mesh.database_url), timeout_s=60, what="every generation final")
        wait_for(lambda: len(receiver.requests) == 2, timeout_s=30, what="the webhook's retry")
        watch_done.join(timeout=30)

    served = Counter(
        r.get("worker")
        for r in server.log_records()
        if r.get("event") == "rpc" and r["method"].endswith("/CreateGeneration")
    )
    assert set(served) == {0, 1}, served  # both workers' numbers are in the sums below

    generations = rows(mesh.database_url)
    assert len(generations) == N
    refused = sum(min(attempts, 1) for _, _, attempts, _ in generations)
    accepted = sum(max(attempts - 1, 0) for _, _, attempts, _ in generations)
    (cancelled_attempts,) = [attempts for status, _, attempts, _ in generations if status == "CANCELLED"]
    # The cancel may land after the retry was accepted: that job still calls back, and is ignored.
    ignored = int(cancelled_attempts >= 2)
    finished_by_ai = [(status, model) for status, model, _, _ in generations if status != "CANCELLED"]
    assert {reason for status, _, _, reason in generations if status == "FAILED"} <= {SIMULATED_FAILURE}

    callback = mesh.metrics_url(mesh.callback_server)
    wait_for(
        lambda: Scrape(callback).value("leo_callback_results_total") >= len(finished_by_ai) + ignored,
        timeout_s=30,
        what="every callback",
    )

    api = Scrape(api_metrics)
    models = Counter(model for _, model, _, _ in generations)
    for model, count in models.items():
        assert api.value("leo_generations_created_total", model=model, kind="IMAGE") == count
    assert api.value("leo_generations_created_total") == N
    assert api.value("leo_generations_finished_total", status="CANCELLED", kind="IMAGE") == 1
    assert api.value("leo_generations_finished_total") == 1  # the others finish on the callback server
    assert api.value("leo_generation_lifetime_seconds_count", status="CANCELLED") == 1
    assert api.value("leo_dispatch_attempts_total", grpc_code="UNAVAILABLE") == refused
    assert api.value("leo_dispatch_attempts_total", grpc_code="OK") == accepted
    assert api.value("leo_dispatch_attempts_total") == refused + accepted
    assert api.value("leo_dispatch_retries_total", grpc_code="UNAVAILABLE") == refused
    assert api.value("leo_dispatch_retries_total") == refused
    assert api.value("leo_dispatch_timeouts_total") == 0
    create = {"grpc_service": GENERATION_SERVICE, "grpc_method": "CreateGeneration"}
    assert api.value("grpc_server_started_total", **create) == N
    assert api.value("grpc_server_handled_total", **create, grpc_code="OK") == N
    assert api.value("grpc_server_handling_seconds_count", **create) == N
    assert api.value("grpc_server_handled_total", grpc_method="CancelGeneration", grpc_code="OK") == 1
    assert api.value("grpc_server_handled_total", grpc_method="WatchGeneration", grpc_code="OK") == 1
    assert api.value("leo_watch_streams_open") == 0
    assert api.value("leo_webhook_deliveries_total", outcome="retry") == 1
    assert api.value("leo_webhook_deliveries_total", outcome="delivered") == 1
    assert api.value("leo_webhook_deliveries_total") == 2
    assert api.value("leo_webhook_delivery_seconds_count") == 2
    assert api.has("leo_db_pool_connections_in_use") and api.has("leo_dispatch_backlog_due")

    callbacks = Scrape(callback)
    for (status, model), count in Counter(finished_by_ai).items():
        assert callbacks.value("leo_generations_finished_total", status=status, model=model, kind="IMAGE") == count
    assert callbacks.value("leo_generations_finished_total") == len(finished_by_ai)
    assert callbacks.value("leo_generation_lifetime_seconds_count") == len(finished_by_ai)
    assert callbacks.value("leo_callback_results_total", outcome="applied") == len(finished_by_ai)
    assert callbacks.value("leo_callback_results_total", outcome="ignored") == ignored
    assert callbacks.value("leo_callback_results_total") == len(finished_by_ai) + ignored
    # Results go in batches (CompleteGenerations): at least one call, at most one per result.
    results = {"grpc_method": "CompleteGenerations", "grpc_code": "OK"}
    assert 1 <= callbacks.value("grpc_server_handled_total", **results) <= len(finished_by_ai) + ignored
    # N samples of the time to a final state, over the two processes that finish generations.
    assert (
        api.value("leo_generation_lifetime_seconds_count") + callbacks.value("leo_generation_lifetime_seconds_count")
        == N
    )

    ai_metrics = mesh.metrics_url(mesh.mock_ai)
    # A job is let go once its callback is answered.
    wait_for(lambda: Scrape(ai_metrics).value("leo_mock_ai_jobs_in_flight") == 0, what="the jobs let go")
    ai = Scrape(ai_metrics)
    # Jobs go in batches (StartGenerations), each refused or taken on its own.
    starts = {outcome: ai.value("leo_mock_ai_starts_total", outcome=outcome) for outcome in ("refused", "new", "held")}
    assert starts["refused"] == refused and starts["new"] + starts["held"] == accepted
    batches = {"grpc_method": "StartGenerations"}
    calls = ai.value("grpc_server_handled_total", **batches)
    assert 1 <= calls <= refused + accepted
    # A refusal is its job's outcome, never the call's: every call is OK, and timed.
    assert ai.value("grpc_server_handled_total", **batches, grpc_code="OK") == calls
    assert ai.value("grpc_server_handling_seconds_count", **batches) == calls
    assert ai.value("leo_mock_ai_jobs_in_flight") == 0 and ai.value("leo_mock_ai_jobs_queued") == 0

    for client in clients:
        client.close()
