"""The public API is safe: API keys, ownership, paging, cancel, idempotent
create, rate limits and the gRPC → HTTP status table, on the real mesh."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from leo.ai.v1 import ai_pb2
from leo.callback.v1 import callback_pb2, callback_pb2_grpc
from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from tests.clients import (
    Api,
    api_for,
    code_of,
    count_generations,
    json_client,
    reflect,
    wait_for,
)

ENV = {"MOCK_AI_MIN_DELAY_S": "1.5", "MOCK_AI_MAX_DELAY_S": "2"}
MISSING = "00000000-0000-4000-8000-000000000404"


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(env=ENV)


@pytest.fixture(scope="module")
def alice(mesh):
    return api_for(mesh, "alice")


@pytest.fixture(scope="module")
def bob(mesh):
    return api_for(mesh, "bob")


# --- authentication -------------------------------------------------------

GRPC_CALLS = {
    "CreateGeneration": lambda stub, md: stub.CreateGeneration(
        generation_pb2.CreateGenerationRequest(prompt="x"), metadata=md, timeout=5
    ),
    "GetGeneration": lambda stub, md: stub.GetGeneration(
        generation_pb2.GetGenerationRequest(generation_id=MISSING), metadata=md, timeout=5
    ),
    "ListGenerations": lambda stub, md: stub.ListGenerations(
        generation_pb2.ListGenerationsRequest(), metadata=md, timeout=5
    ),
    "CancelGeneration": lambda stub, md: stub.CancelGeneration(
        generation_pb2.CancelGenerationRequest(generation_id=MISSING), metadata=md, timeout=5
    ),
    "WatchGeneration": lambda stub, md: list(
        stub.WatchGeneration(generation_pb2.WatchGenerationRequest(generation_id=MISSING), metadata=md, timeout=5)
    ),
    "RotateWebhookSecret": lambda stub, md: stub.RotateWebhookSecret(
        generation_pb2.RotateWebhookSecretRequest(), metadata=md, timeout=5
    ),
}
HTTP_ROUTES = [
    ("POST", "/v1/generations", {"prompt": "x"}),
    ("POST", "/api/generation", {"prompt": "x"}),
    ("GET", f"/v1/generations/{MISSING}", None),
    ("GET", f"/api/generation/{MISSING}", None),
    ("GET", "/v1/generations", None),
    ("POST", f"/v1/generations/{MISSING}:cancel", {}),
    ("GET", f"/v1/generations/{MISSING}:watch", None),
    ("POST", "/v1/webhookSecret:rotate", {}),
]


@pytest.fixture(scope="module")
def bad_credentials(mesh):
    """Authorization values that must all be refused."""
    revoked = mesh.create_api_key("mallory")
    with psycopg_connect(mesh) as conn:
        conn.execute('UPDATE api_keys SET "revokedAt" = now() WHERE owner = %s', ("mallory",))
    return {
        "missing": None,
        "empty bearer": "Bearer",
        "other scheme": "Basic dXNlcjpwYXNz",
        "no scheme": "leo_notakey",
        "unknown key": "Bearer leo_" + "A" * 43,
        "revoked key": f"Bearer {revoked}",
    }


def psycopg_connect(mesh):
    return psycopg.connect(mesh.database_url, autocommit=True)


@pytest.mark.parametrize("method", GRPC_CALLS)
def test_grpc_calls_without_a_valid_key_are_unauthenticated(mesh, bad_credentials, method):
    before = count_generations(mesh.database_url)
    with grpc.insecure_channel(mesh.api_address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        for name, value in bad_credentials.items():
            metadata = [("authorization", value)] if value else []
            assert code_of(lambda md=metadata: GRPC_CALLS[method](stub, md)) == grpc.StatusCode.UNAUTHENTICATED, name
    assert count_generations(mesh.database_url) == before


@pytest.mark.parametrize("verb, path, body", HTTP_ROUTES)
def test_json_routes_without_a_valid_key_are_401(mesh, bad_credentials, verb, path, body):
    before = count_generations(mesh.database_url)
    for name, value in bad_credentials.items():
        headers = {"authorization": value} if value else {}
        with json_client(mesh, **headers) as http:
            response = http.request(verb, path, json=body)
        assert response.status_code == 401, (name, response.text)
        assert response.json()["code"] == 16
    assert count_generations(mesh.database_url) == before


def refused(api: Api) -> bool:
    try:
        api.list()
    except grpc.RpcError as error:
        return error.code() == grpc.StatusCode.UNAUTHENTICATED
    return False


def test_revoked_key_stops_working_at_once(mesh):
    """At once: as soon as the revocation's notification reaches the
    api_server (it caches keys), well within a second."""
    key = mesh.create_api_key("carol")
    api = Api(mesh.api_address, key)
    api.list()
    with psycopg_connect(mesh) as conn:
        conn.execute('UPDATE api_keys SET "revokedAt" = now() WHERE owner = %s', ("carol",))
    wait_for(lambda: refused(api), timeout_s=5, interval_s=0.01, what="the revoked key to be refused")
    assert code_of(api.list) == grpc.StatusCode.UNAUTHENTICATED


def test_health_needs_no_key(mesh):
    with grpc.insecure_channel(mesh.api_address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# --- ownership ------------------------------------------------------------


def test_another_owners_generation_is_not_found_everywhere(alice, bob, mesh):
    theirs = bob.create("bob's secret").generation_id
    assert code_of(lambda: alice.get(theirs)) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: alice.cancel(theirs)) == grpc.StatusCode.NOT_FOUND
    assert theirs not in {g.generation_id for g in alice.list(page_size=100).generations}
    watch = lambda: list(  # noqa: E731
        alice.stub.WatchGeneration(
            generation_pb2.WatchGenerationRequest(generation_id=theirs), metadata=alice.metadata, timeout=5
        )
    )
    assert code_of(watch) == grpc.StatusCode.NOT_FOUND
    # Indistinguishable from an id that does not exist:
    with json_client(mesh, alice.key) as http:
        mine_missing = http.get(f"/v1/generations/{MISSING}")
        not_mine = http.get(f"/v1/generations/{theirs}")
    assert (mine_missing.status_code, not_mine.status_code) == (404, 404)
    assert not_mine.json()["message"] == mine_missing.json()["message"].replace(MISSING, theirs)
    assert bob.get(theirs).prompt == "bob's secret"


# --- paging ---------------------------------------------------------------


def test_paging_45_generations_while_new_ones_arrive(mesh):
    api = api_for(mesh, "pager")
    made = [api.create(f"page item {i}").generation_id for i in range(45)]
    seen: list[str] = []
    sizes = []
    token = ""
    while True:
        page = api.list(page_size=20, page_token=token)
        sizes.append(len(page.generations))
        seen += [g.generation_id for g in page.generations]
        api.create("arrived between pages")  # newer than everything paged so far
        token = page.next_page_token
        if not token:
            break
    assert sizes == [20, 20, 5]
    assert seen == list(reversed(made))  # newest first, no duplicates, no gaps


def test_page_size_limits_and_bad_tokens(mesh):
    api = api_for(mesh, "limits")
    for i in range(3):
        api.create(f"limit {i}")
    assert len(api.list(page_size=0).generations) == 3
    assert len(api.list(page_size=1000).generations) == 3
    assert code_of(lambda: api.list(page_size=-1)) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: api.list(page_token="garbage!")) == grpc.StatusCode.INVALID_ARGUMENT
    first = api.list(page_size=1)
    filtered = lambda: api.list(page_size=1, page_token=first.next_page_token, status=generation_pb2.STATUS_PENDING)  # noqa: E731
    assert code_of(filtered) == grpc.StatusCode.INVALID_ARGUMENT


def test_status_filter(mesh):
    api = api_for(mesh, "filter")
    keep = api.create("stays pending").generation_id
    gone = api.create("cancelled").generation_id
    api.cancel(gone)
    cancelled = api.list(status=generation_pb2.STATUS_CANCELLED).generations
    assert [g.generation_id for g in cancelled] == [gone]
    assert keep not in {g.generation_id for g in cancelled}


def test_list_over_json(mesh):
    key = mesh.create_api_key("json pager")
    with json_client(mesh, key) as http:
        for i in range(3):
            http.post("/v1/generations", json={"prompt": f"json {i}"}).raise_for_status()
        first = http.get("/v1/generations", params={"pageSize": 2}).json()
        assert len(first["generations"]) == 2 and first["nextPageToken"]
        rest = http.get("/v1/generations", params={"pageSize": 2, "pageToken": first["nextPageToken"]}).json()
    assert len(rest["generations"]) == 1 and rest["nextPageToken"] == ""


# --- cancel ---------------------------------------------------------------


def test_cancel_of_a_running_generation_stops_its_job_on_the_worker(mesh, alice):
    generation_id = alice.create("cancel me").generation_id
    # Cancelled once a worker has the job (one cancelled before its dispatch
    # is simply never sent).
    wait_for(
        lambda: any(
            r.get("event") == "job taken" and r.get("generation_id") == generation_id
            for worker in mesh.mock_ais
            for r in worker.log_records()
        ),
        timeout_s=10,
        what="a worker to take the job",
    )
    cancelled = alice.cancel(generation_id)
    assert cancelled.status == generation_pb2.STATUS_CANCELLED and cancelled.complete_time.seconds > 0
    # The worker stops the job at once: no result comes, no file stays.
    wait_for(
        lambda: any(
            r.get("event") == "job stopped" and r.get("generation_id") == generation_id
            for worker in mesh.mock_ais
            for r in worker.log_records()
        ),
        timeout_s=10,
        what="the worker to stop the job",
    )
    assert not any(
        r.get("generation_id") == generation_id
        for r in mesh.callback_server.log_records()
        if r.get("event") == "completion"
    )
    assert not list((mesh.media_dir / generation_id).glob("*"))
    after = alice.get(generation_id)
    assert after.status == generation_pb2.STATUS_CANCELLED and not after.images


def test_cancel_of_a_final_generation_is_failed_precondition(mesh, alice):
    generation_id = alice.create("finish first").generation_id
    wait_for(lambda: alice.get(generation_id).status == generation_pb2.STATUS_COMPLETE, timeout_s=20, what="completion")
    assert code_of(lambda: alice.cancel(generation_id)) == grpc.StatusCode.FAILED_PRECONDITION
    with json_client(mesh, alice.key) as http:
        response = http.post(f"/v1/generations/{generation_id}:cancel", json={})
    assert response.status_code == 400 and response.json()["code"] == 9
    assert "only PENDING" in response.json()["message"]


# --- idempotent create ----------------------------------------------------


def test_twenty_concurrent_creates_with_one_key_make_one_generation(mesh):
    api = api_for(mesh, "retrier")
    request_id = str(uuid.uuid4())
    with ThreadPoolExecutor(20) as pool:
        ids = set(pool.map(lambda _: api.create("same", request_id=request_id).generation_id, range(20)))
    assert len(ids) == 1
    assert [g.generation_id for g in api.list().generations] == list(ids)


def test_idempotency_key_header_means_request_id_and_conflicts_are_409(mesh):
    key = mesh.create_api_key("stripe style")
    idempotency_key = str(uuid.uuid4())
    with json_client(mesh, key, **{"idempotency-key": idempotency_key}) as http:
        first = http.post("/v1/generations", json={"prompt": "once"})
        again = http.post("/v1/generations", json={"prompt": "once"})
        other = http.post("/v1/generations", json={"prompt": "another prompt"})
    assert first.status_code == again.status_code == 200
    assert first.json()["generation"]["generationId"] == again.json()["generation"]["generationId"]
    assert other.status_code == 409 and other.json()["code"] == 6
    assert "already used with other parameters" in other.json()["message"]
    with json_client(mesh, key) as http:
        same_as_field = http.post("/v1/generations", json={"prompt": "once", "requestId": idempotency_key})
    assert same_as_field.json()["generation"]["generationId"] == first.json()["generation"]["generationId"]


def test_the_same_request_id_of_another_owner_is_independent(alice, bob):
    request_id = str(uuid.uuid4())
    assert (
        alice.create("a", request_id=request_id).generation_id != bob.create("b", request_id=request_id).generation_id
    )


# --- rate limits ----------------------------------------------------------


def test_pending_cap_per_owner_is_429_naming_the_limit(make_mesh):
    mesh = make_mesh(env={"MOCK_AI_MIN_DELAY_S": "60", "MOCK_AI_MAX_DELAY_S": "60", "MAX_PENDING_PER_OWNER": "3"})
    api = api_for(mesh, "greedy")
    for i in range(3):
        api.create(f"greedy {i}")
    with pytest.raises(grpc.RpcError) as caught:
        api.create("one too many")
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 3 may be PENDING" in caught.value.details()
    with json_client(mesh, api.key) as http:
        response = http.post("/v1/generations", json={"prompt": "via json"})
    assert response.status_code == 429 and response.json()["code"] == 8
    assert "at most 3" in response.json()["message"]
    api_for(mesh, "modest").create("others are not limited")


def test_envoy_rate_limits_the_public_listener_with_json_429s(mesh):
    # A client (and its connections) per thread: one httpx.Client shared by
    # 32 threads in such a burst once read a socket it had closed meanwhile
    # (EBADF), and once waited 10 s for an answer on one.
    def burst(count: int) -> list[httpx.Response]:
        with json_client(mesh) as http:
            return [http.get("/v1/generations") for _ in range(count)]

    with ThreadPoolExecutor(32) as pool:
        responses = [r for chunk in pool.map(burst, [1000 // 32 + (i < 1000 % 32) for i in range(32)]) for r in chunk]
    assert len(responses) == 1000
    codes = {r.status_code for r in responses}
    assert codes <= {401, 429} and 429 in codes, codes
    limited = next(r for r in responses if r.status_code == 429)
    assert limited.headers["content-type"].startswith("application/json")
    assert limited.json()["code"] == 8
    time.sleep(2.5)  # let the bucket refill for the tests after this one


# --- internal services are not reachable through Envoy --------------------


# Methods nothing of ours calls (the mesh uses their batch forms): only the
# forged calls below could make an rpc line of them.
FORGED = ("/leo.callback.v1.CallbackService/CompleteGeneration", "/leo.ai.v1.AIService/StartGeneration")


def reached_internal_services(mesh) -> list[dict]:
    """Lines of the callback server and the AI worker about the forged calls:
    an rpc line of their methods, or any line naming their generation. (Not
    every line: heartbeats and jobs of earlier tests log meanwhile.)"""
    return [
        record
        for process in (mesh.callback_server, mesh.mock_ai)
        for record in process.log_records()
        if record.get("method") in FORGED or MISSING in record.values()
    ]


def test_internal_services_are_not_routed(mesh):
    assert reached_internal_services(mesh) == []
    with json_client(mesh) as http:
        for path in FORGED:
            response = http.post(path, json={"generationId": MISSING})
            assert response.status_code == 404 and response.json()["code"] == 5
    with grpc.insecure_channel(f"127.0.0.1:{mesh.ports.envoy}") as channel:
        callback = callback_pb2_grpc.CallbackServiceStub(channel)
        request = callback_pb2.CompleteGenerationRequest(generation_id=MISSING, failure_reason="forged")
        assert code_of(lambda: callback.CompleteGeneration(request, timeout=5)) == grpc.StatusCode.UNIMPLEMENTED
    assert reached_internal_services(mesh) == []


def test_a_call_to_an_internal_service_still_sending_is_refused_on_its_headers(mesh):
    """A client that keeps its request stream open (a streaming call) gets
    UNIMPLEMENTED as a unary call does, not Envoy's request timeout (30 s,
    beyond this call's deadline): nothing waits for the rest of a request
    that goes nowhere."""
    call_over = threading.Event()

    def requests():
        # The request stream is never half-closed before the answer: whether
        # the answer comes before or after this first message is sent, the
        # call is one still sending.
        yield ai_pb2.StartGenerationsRequest().SerializeToString()
        call_over.wait(timeout=30)

    with grpc.insecure_channel(f"127.0.0.1:{mesh.ports.envoy}") as channel:
        stream = channel.stream_unary("/leo.ai.v1.AIService/StartGenerations")
        try:
            assert code_of(lambda: stream(requests(), timeout=10)) == grpc.StatusCode.UNIMPLEMENTED
        finally:
            call_over.set()


def test_reflection_through_envoy_shows_only_the_public_api(mesh):
    envoy = f"127.0.0.1:{mesh.ports.envoy}"
    listed = reflect(envoy, list_services="").list_services_response.service
    assert {s.name for s in listed} == {
        "leo.generation.v1.GenerationService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    public = reflect(envoy, file_containing_symbol="leo.generation.v1.GenerationService")
    assert public.file_descriptor_response.file_descriptor_proto
    # The api_server calls the AI, so its process holds the AI's descriptors:
    # reflection must not describe them.
    for internal in ("leo.ai.v1.AIService", "leo.callback.v1.CallbackService"):
        reply = reflect(envoy, file_containing_symbol=internal)
        assert reply.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0], internal


# --- the gRPC status → HTTP status table ------------------------------------


def test_every_error_the_api_returns_maps_like_grpc_gateway(mesh, alice):
    key = alice.key
    done = alice.create("for the table").generation_id
    wait_for(lambda: alice.get(done).status == generation_pb2.STATUS_COMPLETE, timeout_s=20, what="completion")
    request_id = str(uuid.uuid4())
    alice.create("first use", request_id=request_id)
    cases = [
        # (what, request, HTTP status, gRPC code number)
        ("INVALID_ARGUMENT", ("POST", "/v1/generations", {"prompt": ""}), 400, 3),
        ("UNAUTHENTICATED", ("GET", "/v1/generations", None, False), 401, 16),
        ("NOT_FOUND", ("GET", f"/v1/generations/{MISSING}", None), 404, 5),
        ("ALREADY_EXISTS", ("POST", "/v1/generations", {"prompt": "second use", "requestId": request_id}), 409, 6),
        ("FAILED_PRECONDITION", ("POST", f"/v1/generations/{done}:cancel", {}), 400, 9),
    ]
    with json_client(mesh, key) as http, json_client(mesh) as anonymous:
        for name, request, status, code in cases:
            verb, path, body, *authenticated = request
            client = anonymous if authenticated == [False] else http
            response = client.request(verb, path, json=body)
            assert (response.status_code, response.json()["code"]) == (status, code), (name, response.text)
            assert set(response.json()) == {"code", "message", "details"}
