"""What only real processes show, on one mesh whose api_server runs as
two worker processes on one port (SO_REUSEPORT): each process's /metrics
after a known flow (the workers' numbers adding up on their one port),
calls spread across the workers, a worker that dies taking the service
down with exit 1 for its supervisor to restart, and a SIGTERM that drains
every process, ending open watches at once. The database is the record of
what happened that the numbers are compared with.

The tests run in this order; each leaves every process running but the
last, which stops them all."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from pathlib import Path

import grpc
import pytest

from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from mock_ai_server.settings import Settings as MockAiSettings
from tests import rows
from tests.clients import Api, wait_for
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
    "QUEUE_METRICS_MAX_AGE_S": "0",
}
N = 8
SIMULATED_FAILURE = "the model could not render this prompt (simulated failure)"
GENERATION_SERVICE = "leo.generation.v1.GenerationService"
PENDING = generation_pb2.STATUS_PENDING


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(env=FLOW, with_envoy=False)


def own_connection(address: str, key: str) -> Api:
    """A client on a connection of its own (the kernel spreads connections over the workers)."""
    api = Api(address, key)
    api.channel = grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
    api.stub = generation_pb2_grpc.GenerationServiceStub(api.channel)
    return api


def workers_of(pid: int) -> list[int]:
    """The worker processes of an api_server (not multiprocessing's resource tracker)."""
    children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def served_creates(server, ids: list[str]) -> Counter:
    """Which worker served the CreateGeneration of each of `ids`."""
    return Counter(
        r.get("worker")
        for r in server.log_records()
        if r.get("event") == "rpc" and r["method"].endswith("/CreateGeneration") and r.get("generation_id") in ids
    )


def test_each_process_counts_exactly_what_the_flow_did(mesh):
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

        wait_for(
            lambda: "PENDING" not in rows.statuses(mesh.database_url, owner="counted"),
            timeout_s=60,
            what="every generation final",
        )
        wait_for(lambda: len(receiver.requests) == 2, timeout_s=30, what="the webhook's retry")
        watch_done.join(timeout=30)

    served = Counter(
        r.get("worker")
        for r in server.log_records()
        if r.get("event") == "rpc" and r["method"].endswith("/CreateGeneration")
    )
    assert set(served) == {0, 1}, served  # both workers' numbers are in the sums below

    generations = rows.outcomes(mesh.database_url, owner="counted")
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
    # The supervisor reads the queue's gauges from the database itself: nothing
    # waits, and the one AI worker's slots are free.
    assert api.value("leo_queue_depth") == 0 and api.value("leo_owner_running") == 0
    assert api.value("leo_worker_slots", state="busy") == 0
    assert api.value("leo_worker_slots", state="free") == MockAiSettings().mock_ai_slots

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


def test_two_workers_share_the_port_and_the_work(mesh):
    (server,) = mesh.api_servers
    key = mesh.create_api_key("shared")
    wait_for(lambda: len(workers_of(server.proc.pid)) == 2, timeout_s=10, what="two workers")
    # New connections are spread by the kernel: a connection each (channels
    # of one process would otherwise share one).
    clients = [own_connection(mesh.api_address, key) for _ in range(12)]
    ids = [client.create(f"spread {i}").generation_id for i, client in enumerate(clients)]
    wait_for(
        lambda: "PENDING" not in rows.statuses(mesh.database_url, ids=ids), timeout_s=30, what="every generation final"
    )
    for client in clients:
        client.close()
    served = served_creates(server, ids)
    assert set(served) == {0, 1}, served
    assert sum(served.values()) == len(ids)
    # Each went all the way through: the AI refused its first start (injected)
    # and took the second, then rendered it or failed it as told.
    for status, _, attempts, reason in rows.outcomes(mesh.database_url, owner="shared"):
        assert attempts == 2 and (status, reason) in {("COMPLETE", None), ("FAILED", SIMULATED_FAILURE)}


def test_a_worker_that_dies_stops_the_service_with_exit_1(mesh):
    (server,) = mesh.api_servers
    children = wait_for(lambda: len(w := workers_of(server.proc.pid)) == 2 and w, timeout_s=10, what="two workers")
    os.kill(children[0], signal.SIGKILL)
    assert server.proc.wait(timeout=60) == 1
    assert not any(Path(f"/proc/{child}").exists() for child in children)
    mesh.start_process(server)  # as its supervisor would


def test_sigterm_drains_every_process_and_ends_open_watches_at_once(mesh):
    """Last: it stops the mesh. The callback server goes first, so the
    watched generation's result cannot be recorded and it stays PENDING."""
    api = Api(mesh.api_address, mesh.create_api_key("drained"))
    (server,) = mesh.api_servers

    def stopped_gracefully(process, name: str) -> None:
        assert process.stop() == 0, process.log_text()[-2000:]
        records = process.log_records(this_run=True)
        events = [r.get("event") for r in records]
        assert "shutting down" in events and events[-1] == "stopped"
        assert {r["service"] for r in records if "service" in r} == {name}

    stopped_gracefully(mesh.callback_server, "callback_server")
    generation_id = api.create("held for long").generation_id
    request = generation_pb2.WatchGenerationRequest(generation_id=generation_id)
    stream = api.stub.WatchGeneration(request, metadata=api.metadata, timeout=60)
    assert next(stream).generation.status == PENDING
    stopped_gracefully(server, "api_server")  # SIGTERM drains every worker
    # Ended by the drain, not cut when the grace period ran out.
    with pytest.raises(grpc.RpcError) as caught:
        list(stream)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and "watch again" in caught.value.details()
    api.close()
    stopped_gracefully(mesh.mock_ai, "mock_ai_server")
