"""The public edge on the real mesh: Envoy with envoy/edge.lua in front of the
api_server. Headers gRPC forbids, a stalled or dead api_server, per-key rate
limits, header sizes, grpc-gateway's answers (405, no grpc-* headers for
JSON, members named "") and the ErrorInfo of every error Envoy makes."""

from __future__ import annotations

import json
import os
import re
import signal
import string
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from google.api import annotations_pb2
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from tests.clients import code_of, json_client, wait_for
from tests.raw_http import H2Reply, grpc_frame, h2_request, http1_request

# High enough that only the rate-limit tests meet a limit.
UNLIMITED = {
    "ENVOY_RATE_LIMIT_PER_KEY_RPS": "1000",
    "ENVOY_RATE_LIMIT_PER_KEY_BURST": "2000",
    "ENVOY_RATE_LIMIT_GLOBAL_RPS": "5000",
    "ENVOY_RATE_LIMIT_GLOBAL_BURST": "10000",
}
FAST_AI = {"MOCK_AI_MIN_DELAY_S": "0.2", "MOCK_AI_MAX_DELAY_S": "0.4"}
MISSING = "00000000-0000-4000-8000-000000000404"
SERVICE = "/leo.generation.v1.GenerationService/"
DOMAIN = "generation.leo.example"


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(env={**FAST_AI, **UNLIMITED})


@pytest.fixture(scope="module")
def key(mesh):
    return mesh.create_api_key("edge")


@pytest.fixture(scope="module")
def http(mesh, key):
    with json_client(mesh, key) as client:
        yield client


def reason_of(body: dict) -> str:
    """The ErrorInfo reason of a google.rpc.Status JSON body (one ErrorInfo)."""
    [info] = [d for d in body["details"] if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"]
    assert info["domain"] == DOMAIN
    return info["reason"]


def assert_edge_error(response: httpx.Response, status: int, code: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert (body["code"], reason_of(body)) == (code, reason), body


def h2_grpc_list(mesh, key: str | None, extra: list[tuple[str, str]]) -> H2Reply:
    """ListGenerations as native gRPC through Envoy."""
    headers = [("content-type", "application/grpc"), ("te", "trailers"), *extra]
    if key:
        headers.append(("authorization", f"Bearer {key}"))
    return h2_request(
        mesh.ports.envoy,
        "POST",
        SERVICE + "ListGenerations",
        headers,
        grpc_frame(generation_pb2.ListGenerationsRequest()),
    )


def h2_json(
    mesh, key: str | None, extra: list[tuple[str, str]], method: str = "GET", path: str = "/v1/generations"
) -> H2Reply:
    headers = [*extra, *([("authorization", f"Bearer {key}")] if key else [])]
    return h2_request(mesh.ports.envoy, method, path, headers)


# --- 1. headers gRPC forbids ----------------------------------------------------

# Names HTTP allows (tchar) and gRPC does not ([0-9a-z_.-]), and values gRPC
# refuses: each made the api_server answer INTERNAL ("Illegal header key").
ILLEGAL_HEADERS = [
    *[(name, "1") for name in ["#e", "x*y", "a|b", "!x", "x'y", "x^y", "x`y", "x~y", "x$y", "x%y", "x&y", "x+y"]],
    *[("x-b-bin", value) for value in ["!!!", "Y", "YQ==,YQ", "-_8", "YQ=a", "Y===", "YWJjZ", "00", "YR==", "YWJ"]],
    ("grpc-trace-bin", "!!!"),
    ("grpc-timeout", "abc"),
    ("grpc-timeout", "1s"),
    ("grpc-timeout", "999999999S"),
    ("grpc-previous-rpc-attempts", "x"),
]


@pytest.mark.parametrize(("name", "value"), ILLEGAL_HEADERS)
def test_headers_grpc_forbids_are_dropped_at_the_edge(mesh, key, http, name, value):
    assert http.get("/v1/generations", headers={name: value}).status_code == 200
    with json_client(mesh) as anonymous:
        assert anonymous.get("/v1/generations", headers={name: value}).status_code == 401
    assert h2_json(mesh, key, [(name, value)]).status == 200
    assert h2_grpc_list(mesh, key, [(name, value)]).grpc_status == grpc.StatusCode.OK.value[0]


def test_a_json_client_grpc_encoding_is_dropped(mesh, key, http):
    assert http.get("/v1/generations", headers={"grpc-encoding": "bogus"}).status_code == 200
    assert h2_json(mesh, key, [("grpc-encoding", "gzip")]).status == 200


def test_a_compression_the_api_server_lacks_is_unimplemented_not_internal(mesh, key):
    assert h2_grpc_list(mesh, key, [("grpc-encoding", "snappy")]).grpc_status == grpc.StatusCode.UNIMPLEMENTED.value[0]
    assert h2_grpc_list(mesh, key, [("grpc-encoding", "gzip")]).grpc_status == grpc.StatusCode.OK.value[0]


@pytest.mark.parametrize("value", ["", "YQ", "YQ=", "YQ==", "a+/A", "YWJjZA", "0w", "YWI="])
def test_bin_values_that_are_base64_still_reach_the_api_server(mesh, key, value):
    assert h2_grpc_list(mesh, key, [("x-b-bin", value)]).grpc_status == grpc.StatusCode.OK.value[0]


TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
# Headers that change what the request is, not what it carries.
HOP_BY_HOP_AND_CREDENTIALS = {
    "authorization",
    "connection",
    "content-length",
    "expect",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.text(alphabet=TCHAR, min_size=1, max_size=12).map(lambda n: n.lower()),
    bin_suffix=st.booleans(),
    value=st.text(alphabet=string.ascii_letters + string.digits + "+/=!-_ .:", max_size=12).map(str.strip),
)
def test_any_header_http_allows_is_never_a_5xx(mesh, key, http, name, bin_suffix, value):
    name = f"{name}-bin" if bin_suffix else name
    if name in HOP_BY_HOP_AND_CREDENTIALS:
        return
    response = http.get("/v1/generations", headers={name: value})
    over_http2 = h2_json(mesh, key, [(name, value)])
    native = h2_grpc_list(mesh, key, [(name, value)])
    if "_" in name:  # Envoy refuses underscores in names (headers_with_underscores_action)
        assert response.status_code == 400, response.text
        assert over_http2.refused and native.refused  # HTTP/2: the stream is reset
    else:
        assert response.status_code == 200, (name, value, response.text)
        assert over_http2.status == 200, (name, value, over_http2)
        assert native.grpc_status == grpc.StatusCode.OK.value[0], (name, value, native)


def test_names_http2_itself_forbids_are_refused_by_envoy_not_a_5xx(mesh, key):
    for name in ["X-Upper", "x y"]:
        for reply in (h2_json(mesh, key, [(name, "1")]), h2_grpc_list(mesh, key, [(name, "1")])):
            assert reply.refused or (reply.status or 0) < 500, (name, reply)


def new_log_lines(process, since: int) -> str:
    """What a mesh process wrote to its log after `since` characters."""
    return process.log_text()[since:]


@pytest.mark.parametrize("suffix", ["\xe9", "\xa0"])
def test_a_key_that_is_not_utf8_is_401_and_reaches_no_log(mesh, key, suffix):
    """The key with one Latin-1 byte after it (a pasted no-break space, sent
    by a client that encodes headers as Latin-1, as http.client does), over
    HTTP/1.1, HTTP/2, native gRPC through Envoy and gRPC straight to the
    api_server: a clean UNAUTHENTICATED each time, and the key in no log
    line at any level (gRPC's library wrote it whole at ERROR)."""
    api_server = mesh.api_servers[0]
    since = {process.name: len(process.log_text()) for process in (api_server, mesh.envoy)}
    value = f"Bearer {key}{suffix}"

    status, body = http1_request(mesh.ports.envoy, "GET", "/v1/generations", [("authorization", value)])
    assert status == 401 and reason_of(json.loads(body)) == "API_KEY_INVALID", body
    assert json.loads(body)["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    over_http2 = h2_json(mesh, None, [("authorization", value)])
    assert over_http2.status == 401 and reason_of(json.loads(over_http2.body)) == "API_KEY_INVALID"
    assert h2_grpc_list(mesh, None, [("authorization", value)]).grpc_status == grpc.StatusCode.UNAUTHENTICATED.value[0]
    direct = h2_request(
        mesh.ports.api[0],
        "POST",
        SERVICE + "ListGenerations",
        [("content-type", "application/grpc"), ("te", "trailers"), ("authorization", value)],
        grpc_frame(generation_pb2.ListGenerationsRequest()),
    )
    assert direct.grpc_status == grpc.StatusCode.UNAUTHENTICATED.value[0]

    # The api_server logged the direct call (its one line per call) and nothing of the key.
    wait_for(lambda: "UNAUTHENTICATED" in new_log_lines(api_server, since[api_server.name]), what="the call's line")
    for process in (api_server, mesh.envoy):
        written = new_log_lines(process, since[process.name])
        assert key not in written and key[:12] not in written, process.name
    levels = {json.loads(line)["level"] for line in new_log_lines(api_server, since[api_server.name]).splitlines()}
    assert levels <= {"info"}, levels


def test_a_utf8_no_break_space_after_the_key_is_no_key(mesh, key):
    """Valid UTF-8, so the edge passes it on; the api_server reads no key
    in it (it trims spaces and tabs only), and its bucket is the anonymous one."""
    value = f"Bearer {key}" + "\u00a0".encode().decode("latin-1")
    over_http2 = h2_json(mesh, None, [("authorization", value)])
    assert over_http2.status == 401 and reason_of(json.loads(over_http2.body)) == "API_KEY_INVALID"


@pytest.mark.parametrize("name", ["idempotency-key", "x-note", "traceparent"])
def test_another_header_that_is_not_utf8_is_400_naming_it(mesh, key, name):
    """Refused, not dropped: the header may be one the api_server reads."""
    headers = [("authorization", f"Bearer {key}"), (name, "caf\xe9")]
    status, body = http1_request(mesh.ports.envoy, "GET", "/v1/generations", headers)
    assert status == 400 and reason_of(json.loads(body)) == "MALFORMED_REQUEST", body
    assert json.loads(body)["message"] == f"header {name}: the value must be UTF-8"
    assert h2_grpc_list(mesh, key, [(name, "caf\xe9")]).grpc_status == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert h2_grpc_list(mesh, key, [(name, "café".encode().decode("latin-1"))]).grpc_status == 0


# --- 2. a stalled api_server is not ejected; a dead one is -----------------------


def envoy_clusters(mesh) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{mesh.ports.envoy_admin}/clusters", timeout=5) as reply:
        return reply.read().decode()


def test_a_stalled_api_server_keeps_its_traffic(mesh):
    key = mesh.create_api_key("patient")
    group = mesh.api_servers[0].proc.pid
    with json_client(mesh, key, timeout_s=60) as http:
        assert http.get("/v1/generations").status_code == 200
        pool = ThreadPoolExecutor(20)
        os.killpg(group, signal.SIGSTOP)
        try:
            # 7 s: the old health check (1 s timeout, 2 failures) ejected the
            # host within 4 to 6 s, and then every call was 503.
            calls = []
            for _ in range(14):
                calls.append(pool.submit(http.get, "/v1/generations"))
                time.sleep(0.5)
        finally:
            os.killpg(group, signal.SIGCONT)
        replies = [call.result() for call in calls]
        pool.shutdown()
    assert [r.status_code for r in replies] == [200] * len(replies), [r.text for r in replies if r.status_code != 200]
    assert "failed_active_hc" not in envoy_clusters(mesh)


def test_a_dead_api_server_is_a_503_json_then_ejected_then_back(mesh):
    """It leaves the mesh as it found it: the api_server serving again."""
    key = mesh.create_api_key("survivor")
    api_server = mesh.api_servers[0]
    api_server.kill()
    with json_client(mesh, key) as http, grpc.insecure_channel(f"127.0.0.1:{mesh.ports.envoy}") as channel:
        # At once: the connection is refused, nothing waits for a timeout.
        assert_edge_error(http.get("/v1/generations"), 503, 14, "UPSTREAM_UNAVAILABLE")
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        metadata = [("authorization", f"Bearer {key}")]
        list_call = lambda: stub.ListGenerations(generation_pb2.ListGenerationsRequest(), metadata=metadata, timeout=10)  # noqa: E731
        assert code_of(list_call) == grpc.StatusCode.UNAVAILABLE
        # Then ejected by the health check.
        wait_for(lambda: "failed_active_hc" in envoy_clusters(mesh), what="the dead api_server to be ejected")
        ejected = http.get("/v1/generations")
        assert_edge_error(ejected, 503, 14, "UPSTREAM_UNAVAILABLE")
        assert ejected.json()["message"] == "no healthy upstream"

        mesh.start_process(api_server)
        wait_for(lambda: http.get("/v1/generations").status_code == 200, what="the restarted api_server to get traffic")
        assert list(list_call().generations) == []


# --- 3. rate limits per API key, and for the listener ---------------------------

PER_KEY_LIMIT = {
    "ENVOY_RATE_LIMIT_PER_KEY_RPS": "1",
    "ENVOY_RATE_LIMIT_PER_KEY_BURST": "5",
    "ENVOY_RATE_LIMIT_GLOBAL_RPS": "5000",
    "ENVOY_RATE_LIMIT_GLOBAL_BURST": "10000",
}


@pytest.fixture(scope="module")
def limited(make_mesh):
    return make_mesh(env=PER_KEY_LIMIT)


def until_limited(send, attempts: int = 60) -> list[httpx.Response]:
    """Sends until the first 429 (at most `attempts` times)."""
    responses = []
    for _ in range(attempts):
        responses.append(send())
        if responses[-1].status_code == 429:
            break
    return responses


def test_one_key_out_of_tokens_does_not_stop_another(limited):
    alice, bob = limited.create_api_key("alice"), limited.create_api_key("bob")
    with json_client(limited, alice) as alice_http, json_client(limited, bob) as bob_http:
        responses = until_limited(lambda: alice_http.get("/v1/generations"))
        assert [r.status_code for r in responses[:-1]] == [200] * (len(responses) - 1)
        assert_edge_error(responses[-1], 429, 8, "RATE_LIMITED")
        assert bob_http.get("/v1/generations").status_code == 200


def test_grpc_through_envoy_is_resource_exhausted_not_unavailable(limited):
    key = limited.create_api_key("grpc client")
    with grpc.insecure_channel(f"127.0.0.1:{limited.ports.envoy}") as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        metadata = [("authorization", f"Bearer {key}")]
        codes = []
        for _ in range(60):
            try:
                stub.ListGenerations(generation_pb2.ListGenerationsRequest(), metadata=metadata, timeout=10)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())
                break
    assert codes[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert set(codes[:-1]) <= {grpc.StatusCode.OK}


def test_a_429_says_when_a_token_is_back(limited):
    """One refill of the bucket (1 s): Retry-After and a RetryInfo before the
    ErrorInfo for JSON clients; the same RetryInfo and ErrorInfo in a native
    gRPC client's status details."""
    key = limited.create_api_key("impatient")
    with json_client(limited, key) as http:
        refused = until_limited(lambda: http.get("/v1/generations"))[-1]
    assert_edge_error(refused, 429, 8, "RATE_LIMITED")
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["details"][0] == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}
    assert no_grpc_headers(refused.headers)

    with grpc.insecure_channel(f"127.0.0.1:{limited.ports.envoy}") as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        metadata = [("authorization", f"Bearer {key}")]
        with pytest.raises(grpc.RpcError) as caught:
            for _ in range(60):
                stub.ListGenerations(generation_pb2.ListGenerationsRequest(), metadata=metadata, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(caught.value)
    retry, info = error_details_pb2.RetryInfo(), error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(retry) and status.details[-1].Unpack(info)
    assert retry.retry_delay.ToTimedelta().total_seconds() == 1
    assert (info.reason, info.domain) == ("RATE_LIMITED", DOMAIN)


def test_requests_without_a_key_share_one_bucket(limited):
    # Each of these is "no key" to the api_server; with a bucket each they
    # would get 4 x 5 answers at once.
    forms = [{}, {"authorization": "Basic dXNlcjpwYXNz"}, {"authorization": "Bearer"}, {"authorization": "leo_notakey"}]
    started = time.monotonic()
    with json_client(limited) as http:
        statuses = [http.get("/v1/generations", headers=form).status_code for form in forms * 6]
    elapsed = time.monotonic() - started
    assert set(statuses) == {401, 429}
    assert statuses.count(401) <= 5 + 1 * (elapsed + 1)


def test_the_console_spends_no_token(limited):
    """A page load is several files that never reach the api_server: none
    of them takes from the bucket that requests without a key share."""
    with json_client(limited) as http:
        statuses = [
            http.get(path).status_code for path in ["/console/", "/console/console.css", "/console/js/main.js"] * 8
        ]
    # Far more than the shared bucket holds (a burst of 5), whatever other tests left in it.
    assert statuses == [200] * len(statuses)


def test_only_the_console_is_compressed(http):
    """gzip for the console's files; API answers, the watch's events
    included, go as they are."""
    gzip = {"accept-encoding": "gzip"}
    assert http.get("/console/js/api.js", headers=gzip).headers["content-encoding"] == "gzip"
    listed = http.get("/v1/generations?pageSize=100", headers=gzip)
    assert listed.status_code == 200 and "content-encoding" not in listed.headers
    generation = http.post("/v1/generations", json={"prompt": "uncompressed"}, headers=gzip).json()["generation"]
    with http.stream("GET", f"/v1/generations/{generation['generationId']}:watch", headers=gzip) as watch:
        assert watch.headers["content-type"] == "text/event-stream" and "content-encoding" not in watch.headers


def test_the_listener_ceiling_holds_across_keys(make_mesh):
    mesh = make_mesh(
        env={
            "ENVOY_RATE_LIMIT_PER_KEY_RPS": "1000",
            "ENVOY_RATE_LIMIT_PER_KEY_BURST": "1000",
            "ENVOY_RATE_LIMIT_GLOBAL_RPS": "1",
            "ENVOY_RATE_LIMIT_GLOBAL_BURST": "5",
        }
    )
    keys = [mesh.create_api_key(f"crowd {i}") for i in range(4)]
    clients = [json_client(mesh, key) for key in keys]
    started = time.monotonic()
    responses = [clients[i % 4].get("/v1/generations") for i in range(24)]
    elapsed = time.monotonic() - started
    for client in clients:
        client.close()
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 429}
    assert statuses.count(200) <= 5 + 1 * (elapsed + 1)
    assert_edge_error(next(r for r in responses if r.status_code == 429), 429, 8, "RATE_LIMITED")


# --- 4. header sizes ---------------------------------------------------------------


def padded(kib: int) -> list[tuple[str, str]]:
    return [("x-big", "a" * (kib * 1024))]


@pytest.mark.parametrize("kib", [8, 15, 20, 31])
def test_headers_under_the_limit_reach_the_api_server(mesh, key, http, kib):
    big = dict(padded(kib))
    assert http.get("/v1/generations", headers=big).status_code == 200
    with json_client(mesh, "leo_" + "A" * 43) as stranger:
        assert stranger.get("/v1/generations", headers=big).status_code == 401
    assert h2_json(mesh, key, padded(kib)).status == 200
    assert h2_json(mesh, None, padded(kib)).status == 401
    assert h2_grpc_list(mesh, key, padded(kib)).grpc_status == grpc.StatusCode.OK.value[0]
    assert h2_grpc_list(mesh, None, padded(kib)).grpc_status == grpc.StatusCode.UNAUTHENTICATED.value[0]


@pytest.mark.parametrize("kib", [33, 64])
def test_headers_over_the_limit_are_431_json(mesh, key, http, kib):
    assert_edge_error(http.get("/v1/generations", headers=dict(padded(kib))), 431, 3, "HEADERS_TOO_LARGE")
    reply = h2_json(mesh, key, padded(kib))
    assert reply.status == 431 and reply.headers["content-type"] == "application/json"
    assert h2_grpc_list(mesh, key, padded(kib)).grpc_status == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_too_many_headers_are_431_json(http):
    assert http.get("/v1/generations", headers={f"x-h{i}": "v" * 200 for i in range(80)}).status_code == 200
    too_many = {f"x-h{i}": "v" for i in range(101)}
    assert_edge_error(http.get("/v1/generations", headers=too_many), 431, 3, "HEADERS_TOO_LARGE")


def test_headers_over_envoys_own_limit_are_431_over_http1(http):
    assert_edge_error(http.get("/v1/generations", headers=dict(padded(100))), 431, 3, "HEADERS_TOO_LARGE")


# --- 5. what grpc-gateway answers ---------------------------------------------------

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]


def http_paths() -> dict[str, set[str]]:
    """Each google.api.http path of GenerationService and its methods."""
    paths: dict[str, set[str]] = {}
    for method in generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].methods:
        rule = method.GetOptions().Extensions[annotations_pb2.http]
        for binding in [rule, *rule.additional_bindings]:
            verb = binding.WhichOneof("pattern")
            paths.setdefault(getattr(binding, verb), set()).add(verb.upper())
    return paths


@pytest.mark.parametrize("template", sorted(http_paths()))
def test_another_method_on_a_known_path_is_405_with_allow(http, template):
    allowed = http_paths()[template]
    path = re.sub(r"\{[^}]+\}", MISSING, template)
    for method in METHODS:
        response = http.request(method, path, json={} if method in ("POST", "PUT", "PATCH") else None)
        if method in allowed:
            assert response.status_code != 405 and response.status_code < 500, (method, path, response.text)
            continue
        assert response.status_code == 405, (method, path, response.text)
        assert set(response.headers["allow"].split(", ")) == allowed
        if method == "HEAD":
            assert response.content == b""
        else:
            assert response.json() == {
                "code": 12,
                "message": "Method Not Allowed",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "METHOD_NOT_ALLOWED",
                        "domain": DOMAIN,
                    }
                ],
            }


@pytest.mark.parametrize("method", ["QUERY", "PROPFIND", "MKCOL"])
@pytest.mark.parametrize("template", sorted(http_paths()))
def test_a_method_the_codec_does_not_route_is_405_too(http, template, method):
    """QUERY without a body, or a WebDAV method, is refused by Envoy's HTTP/1
    codec before routing: still a wrong method, not a malformed request. (A
    token no RFC defines is refused with the request line, before the path
    is known: 400 MALFORMED_REQUEST.)"""
    response = http.request(method, re.sub(r"\{[^}]+\}", MISSING, template))
    assert response.status_code == 405, response.text
    assert set(response.headers["allow"].split(", ")) == http_paths()[template]
    assert response.json()["code"] == 12 and response.json()["details"][0]["reason"] == "METHOD_NOT_ALLOWED"


def test_405_over_http2_too(mesh, key):
    reply = h2_json(mesh, key, [], method="DELETE", path=f"/v1/generations/{MISSING}")
    assert (reply.status, reply.headers["allow"]) == (405, "GET")


def test_unset_fields_are_left_out_not_null(http):
    """The transcoder writes every field without presence, and leaves out a
    message field (a timestamp) while it is unset, where grpc-gateway's
    EmitUnpopulated would write null (docs/decisions.md; the spec says so)."""
    generation = http.post("/v1/generations", json={"prompt": "not finished yet"}).json()["generation"]
    assert generation["status"] == "STATUS_PENDING"
    assert "completeTime" not in generation and {"createTime", "updateTime"} <= set(generation)
    assert None not in generation.values() and generation["failureReason"] == "" and generation["assets"] == []


def test_unknown_paths_stay_404(http):
    assert_edge_error(http.delete("/v2/generations"), 404, 5, "ROUTE_NOT_FOUND")
    assert_edge_error(http.get("/v1/generations/a/b"), 404, 5, "ROUTE_NOT_FOUND")


def no_grpc_headers(headers) -> bool:
    return not [name for name in headers if name.lower().startswith("grpc-")]


def test_json_responses_carry_no_grpc_headers(mesh, key, http):
    created = http.post("/v1/generations", json={"prompt": "no grpc headers"})
    generation_id = created.json()["generation"]["generationId"]
    for response in (
        created,
        http.get("/v1/generations"),
        http.get(f"/v1/generations/{MISSING}"),  # the api_server's error
        http.delete("/v1/generations"),  # Envoy's
    ):
        assert no_grpc_headers(response.headers), (response.status_code, response.headers)
    # Over HTTP/2 a stream ends with trailers: none for JSON clients either.
    watch = h2_json(mesh, key, [], path=f"/v1/generations/{generation_id}:watch")
    assert watch.status == 200 and b"data: " in watch.body
    assert no_grpc_headers(watch.headers) and no_grpc_headers(watch.trailers)
    unary = h2_json(mesh, key, [])
    assert unary.status == 200 and no_grpc_headers(unary.headers) and no_grpc_headers(unary.trailers)


def test_native_grpc_keeps_its_status_headers(mesh, key):
    ok = h2_grpc_list(mesh, key, [])
    assert ok.trailers["grpc-status"] == "0"
    # Trailers-only: the status is a header.
    missing = h2_request(
        mesh.ports.envoy,
        "POST",
        SERVICE + "GetGeneration",
        [("content-type", "application/grpc"), ("te", "trailers"), ("authorization", f"Bearer {key}")],
        grpc_frame(generation_pb2.GetGenerationRequest(generation_id=MISSING)),
    )
    assert missing.headers["grpc-status"] == str(grpc.StatusCode.NOT_FOUND.value[0]) and not missing.trailers
    with grpc.insecure_channel(f"127.0.0.1:{mesh.ports.envoy}") as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        metadata = [("authorization", f"Bearer {key}")]
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetGeneration(
                generation_pb2.GetGenerationRequest(generation_id="12345"), metadata=metadata, timeout=10
            )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_status.from_call(caught.value).details  # grpc-status-details-bin came through


@pytest.mark.parametrize(
    "body",
    [
        '{"prompt":"empty name","":1}',
        '{"":{"":[1,{"":2}]},"prompt":"empty name"}',
        '{"prompt":"empty name","extra":{"":1}}',
        '{"prompt":"empty name","extra":[{"":true}]}',
        ' { "" : "x" , "prompt" : "empty name" } ',
    ],
)
@pytest.mark.parametrize("path", ["/v1/generations", "/api/generation"])
def test_members_named_empty_are_dropped_like_unknown_fields(http, body, path):
    response = http.post(path, content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["generation"]["prompt"] == "empty name"


def test_an_empty_name_in_a_body_with_a_path_field(http):
    response = http.post(
        f"/v1/generations/{MISSING}:cancel", content=b'{"":1}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 404 and "not found" in response.json()["message"]


# --- 5b. query parameters, as grpc-gateway binds them -------------------------------


@pytest.fixture(scope="module")
def two_finished(http) -> tuple[str, str]:
    """Two COMPLETE generations of the key's owner."""
    created = [http.post("/v1/generations", json={"prompt": f"one of two {i}"}) for i in range(2)]
    ids = [response.json()["generation"]["generationId"] for response in created]

    def complete() -> bool:
        statuses = [http.get(f"/v1/generations/{g}").json()["generation"]["status"] for g in ids]
        return statuses == ["STATUS_COMPLETE"] * 2

    wait_for(complete, what="two generations to complete")
    return ids[0], ids[1]


@pytest.mark.parametrize("name", ["generation_id", "generationId", "generation%5Fid", "generation_id.x"])
@pytest.mark.parametrize(
    "spelling", ["/v1/generations/{id}", "/api/generation/{id}", "/v1/gener%61tions/{id}", "/v1/generations/{id}/"]
)
def test_the_query_does_not_override_the_path(http, two_finished, name, spelling):
    """The transcoder let `?generation_id=B` replace the path's A: logs and
    caches saw A while B was read. grpc-gateway ignores such a parameter;
    the edge drops it, whatever spelling of the path the transcoder matches."""
    a, b = two_finished
    response = http.get(spelling.format(id=a) + f"?{name}={b}")
    assert response.status_code == 200, response.text
    assert response.json()["generation"]["generationId"] == a


def test_no_path_spelling_reads_the_query_s_generation(http, two_finished):
    a, b = two_finished
    for path in (f"/v1/generations/{a}:foo", f"/v1/generations/{a}%3Awatch", "/v1/generations/x:y"):
        response = http.get(f"{path}?generation_id={b}")
        assert response.status_code in (400, 404) and b not in response.text, (path, response.text)


def test_cancel_and_watch_act_on_the_path_s_generation(mesh, http, two_finished):
    a, b = two_finished
    cancel = http.post(f"/v1/generations/{a}:cancel?generation_id={b}", json={})
    assert cancel.status_code == 400 and a in cancel.json()["message"] and b not in cancel.text
    watch = h2_json(
        mesh,
        None,
        [("authorization", http.headers["authorization"])],
        path=f"/v1/generations/{a}:watch?generationId={b}",
    )
    assert watch.status == 200 and a.encode() in watch.body and b.encode() not in watch.body


def test_an_asset_index_comes_from_the_path(http, two_finished):
    a, _ = two_finished
    first, second = (http.get(f"/v1/generations/{a}/assets/{index}").content for index in (0, 1))
    assert first != second
    assert http.get(f"/v1/generations/{a}/assets/0?index=1").content == first


def test_a_body_star_route_takes_no_field_from_the_query(http):
    created = http.post("/v1/generations?width=512&height=512&prompt=from+the+query", json={"prompt": "from the body"})
    generation = created.json()["generation"]
    assert (generation["prompt"], generation["width"], generation["height"]) == ("from the body", 1024, 1024)
    no_body = http.post("/v1/generations?prompt=from+the+query", json={})
    assert no_body.status_code == 400 and no_body.json()["details"][0]["fieldViolations"][0]["field"] == "prompt"


@pytest.mark.parametrize(
    ("query", "field"),
    [("pageSize=1&pageSize=2", "page_size"), ("pageSize=1&page_size=2", "page_size"), ("status=1&status=2", "status")],
)
def test_a_field_given_twice_is_400(http, query, field):
    """As grpc-gateway: "too many values for field" (the transcoder took the last)."""
    response = http.get(f"/v1/generations?{query}")
    assert_edge_error(response, 400, 3, "MALFORMED_REQUEST")
    assert response.json()["message"] == f'too many values for field "{field}"'


def test_other_query_parameters_still_bind(http):
    assert len(http.get("/v1/generations?pageSize=1&unknown=1&unknown=2").json()["generations"]) == 1


# --- 6. every error Envoy makes names its reason ----------------------------------


def test_errors_envoy_makes_carry_their_reason(http):
    malformed = http.post("/v1/generations", content=b'{"prompt": ', headers={"content-type": "application/json"})
    assert_edge_error(malformed, 400, 3, "MALFORMED_REQUEST")
    wrong_type = http.post("/v1/generations", json={"prompt": "x", "width": "wide"})
    assert_edge_error(wrong_type, 400, 3, "MALFORMED_REQUEST")
    assert_edge_error(http.get("/v2/nothing"), 404, 5, "ROUTE_NOT_FOUND")
    assert_edge_error(http.put("/v1/generations"), 405, 12, "METHOD_NOT_ALLOWED")
    too_large = http.post("/v1/generations", json={"prompt": "x" * 70_000})
    assert_edge_error(too_large, 413, 3, "REQUEST_TOO_LARGE")


def test_errors_of_the_api_server_keep_their_own_details(mesh, key, http):
    with grpc.insecure_channel(mesh.api_address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetGeneration(
                generation_pb2.GetGenerationRequest(generation_id="12345"),
                metadata=[("authorization", f"Bearer {key}")],
                timeout=10,
            )
    status = rpc_status.from_call(caught.value)
    assert any(detail.Is(error_details_pb2.BadRequest.DESCRIPTOR) for detail in status.details)
    direct = [json_format.MessageToDict(detail, always_print_fields_with_no_presence=True) for detail in status.details]

    response = http.get("/v1/generations/12345")
    assert response.status_code == 400
    assert response.json() == {"code": status.code, "message": status.message, "details": direct}


def test_headers_the_api_server_reads_pass_untouched(http):
    request_id = str(uuid.uuid4())
    first = http.post("/v1/generations", json={"prompt": "once"}, headers={"idempotency-key": request_id, "x!bad": "1"})
    again = http.post("/v1/generations", json={"prompt": "once"}, headers={"idempotency-key": request_id})
    assert first.status_code == again.status_code == 200
    assert first.json()["generation"]["generationId"] == again.json()["generation"]["generationId"]
