"""envoy/envoy.yaml renders and Envoy accepts it (`envoy --mode validate`);
what it says agrees with the descriptor, the gRPC servers and docs/errors.md."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path
from string import Template

import pytest
import yaml
from google.api import annotations_pb2
from google.protobuf import json_format
from google.rpc import status_pb2
from lupa import luajit21
from pydantic import ValidationError

from devstack.envoy import envoy_binary
from leo.generation.v1 import generation_pb2
from leo_mesh import envoy_config as envoy
from leo_mesh import envoy_console, grpc_server

ERRORS_DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def validate(config: Path) -> None:
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def api_server_address(config: Path) -> dict:
    [cluster] = yaml.safe_load(config.read_text())["static_resources"]["clusters"]
    return cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]


def connection_manager(config: dict) -> dict:
    return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def http_filter(config: dict, name: str) -> dict:
    [found] = [f["typed_config"] for f in connection_manager(config)["http_filters"] if f["name"] == name]
    return found


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(envoy.render())


def test_the_variables_are_the_rendered_settings():
    assert set(Template(envoy.TEMPLATE.read_text()).get_identifiers()) == {
        "LISTEN_ADDRESS",
        "LISTEN_PORT",
        "ADMIN_ADDRESS",
        "ADMIN_PORT",
        "API_SERVER_HOST",
        "API_SERVER_PORT",
        "DESCRIPTOR_PATH",
        "RATE_LIMIT_PER_KEY_RPS",
        "RATE_LIMIT_PER_KEY_BURST",
        "RATE_LIMIT_GLOBAL_RPS",
        "RATE_LIMIT_GLOBAL_BURST",
        "RATE_LIMIT_REFILL_S",
        "RATE_LIMITED_STATUS_DETAILS",
        "EDGE_LUA",
        "METHOD_NOT_ALLOWED_ROUTES",
        "METHOD_NOT_ALLOWED_REPLIES",
        "CONSOLE_ROUTES",
        "MAX_DIRECT_RESPONSE_BYTES",
        "TRACING",
        "TRACING_CLUSTERS",
    }


def test_default_config_is_valid(tmp_path):
    config = envoy.write_config(tmp_path / "envoy.yaml")

    assert "${" not in config.read_text()
    assert api_server_address(config) == {"address": "127.0.0.1", "port_value": 50051}
    validate(config)


def test_no_tracing_without_a_collector(config):
    assert "tracing" not in connection_manager(config)
    assert [cluster["name"] for cluster in config["static_resources"]["clusters"]] == ["api_server"]


def test_with_a_collector_envoy_reports_its_spans_there(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVOY_OTLP_ENDPOINT", "http://jaeger:4317")
    out = envoy.write_config(tmp_path / "envoy.yaml", envoy.EnvoySettings())

    rendered = yaml.safe_load(out.read_text())
    provider = connection_manager(rendered)["tracing"]["provider"]
    assert provider["name"] == "envoy.tracers.opentelemetry"
    assert provider["typed_config"]["service_name"] == "envoy"
    collector = provider["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"]
    [cluster] = [c for c in rendered["static_resources"]["clusters"] if c["name"] == collector]
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert endpoint["socket_address"] == {"address": "jaeger", "port_value": 4317}
    validate(out)


@pytest.mark.parametrize("endpoint", ["jaeger:4317", "grpc://jaeger:4317", "http://:4317"])
def test_a_collector_that_is_not_an_http_url_is_refused(endpoint):
    with pytest.raises(ValueError, match="ENVOY_OTLP_ENDPOINT must be"):
        envoy.render(envoy.EnvoySettings(envoy_otlp_endpoint=endpoint))


def test_compose_config_from_environment_is_valid(tmp_path, monkeypatch, capsys):
    for name, value in {
        "ENVOY_LISTEN_ADDRESS": "0.0.0.0",
        "ENVOY_LISTEN_PORT": "8080",
        "ENVOY_ADMIN_ADDRESS": "0.0.0.0",
        "ENVOY_ADMIN_PORT": "9901",
        "API_SERVER_HOST": "api_server",
        "API_SERVER_PORT": "50051",
        "ENVOY_DESCRIPTOR_PATH": str(envoy.DESCRIPTOR),
        "ENVOY_RATE_LIMIT_PER_KEY_RPS": "7",
        "ENVOY_RATE_LIMIT_PER_KEY_BURST": "11",
        "ENVOY_RATE_LIMIT_GLOBAL_RPS": "300",
        "ENVOY_RATE_LIMIT_GLOBAL_BURST": "600",
    }.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "rendered" / "envoy.yaml"

    assert envoy.main([str(out)]) == 0

    assert capsys.readouterr().out.strip() == str(out)
    assert api_server_address(out) == {"address": "api_server", "port_value": 50051}
    limits = http_filter(yaml.safe_load(out.read_text()), "envoy.filters.http.local_ratelimit")
    assert limits["token_bucket"] == {"max_tokens": 600, "tokens_per_fill": 300, "fill_interval": "1s"}
    [per_key] = limits["descriptors"]
    assert per_key["token_bucket"] == {"max_tokens": 11, "tokens_per_fill": 7, "fill_interval": "1s"}
    validate(out)


def test_mesh_env_reaches_the_settings_and_ports_win(monkeypatch):
    monkeypatch.setenv("ENVOY_RATE_LIMIT_GLOBAL_RPS", "5")
    env = {"ENVOY_RATE_LIMIT_PER_KEY_RPS": "3", "ENVOY_LISTEN_PORT": "1", "MOCK_AI_MIN_DELAY_S": "0.1"}

    settings = envoy.EnvoySettings.from_env(env, envoy_listen_port=18080)

    assert settings.envoy_rate_limit_per_key_rps == 3
    assert settings.envoy_rate_limit_global_rps == 5
    assert settings.envoy_listen_port == 18080


@pytest.mark.parametrize("scope", ["PER_KEY", "GLOBAL"])
def test_a_burst_smaller_than_the_rate_is_refused(scope):
    with pytest.raises(ValidationError, match=f"ENVOY_RATE_LIMIT_{scope}_BURST must be at least"):
        envoy.EnvoySettings.from_env({f"ENVOY_RATE_LIMIT_{scope}_RPS": "10", f"ENVOY_RATE_LIMIT_{scope}_BURST": "5"})


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("port_value: ${LISTEN_PORT\n", ValueError),  # malformed placeholder
        ("address: ${API_SERVER_ADDRESS}\n", KeyError),  # unknown variable
        ("routes: ${METHOD_NOT_ALLOWED_ROUTES}\n", KeyError),  # a list needs a line of its own
    ],
)
def test_broken_placeholder_fails_to_render(tmp_path, monkeypatch, template, error):
    broken = tmp_path / "envoy.yaml"
    broken.write_text(template)
    monkeypatch.setattr(envoy, "TEMPLATE", broken)

    with pytest.raises(error):
        envoy.render()


# --- 405 routes -------------------------------------------------------------


def proto_bindings() -> set[tuple[str, str]]:
    """(method, path) of every google.api.http binding, from the generated module."""
    service = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"]
    found = set()
    for method in service.methods:
        rule = method.GetOptions().Extensions[annotations_pb2.http]
        for binding in [rule, *rule.additional_bindings]:
            verb = binding.WhichOneof("pattern")
            found.add((verb.upper(), getattr(binding, verb)))
    return found


def test_http_bindings_are_read_from_the_descriptor():
    bindings = envoy.http_bindings()

    assert {(verb, path) for path, verbs in bindings.items() for verb in verbs} == proto_bindings()
    assert bindings["/v1/generations"] == ["GET", "POST"]


def test_every_path_has_one_405_route(config):
    routes = connection_manager(config)["route_config"]["virtual_hosts"][0]["routes"]
    # (The console's own 405, under /console/, is not one of the API's paths.)
    refused = [r for r in routes if r.get("direct_response", {}).get("status") == 405 and "safe_regex" in r["match"]]

    paths = {path for _, path in proto_bindings()}
    assert len(refused) == len(paths)
    for route in refused:
        [allow] = route["response_headers_to_add"]
        [methods] = route["match"]["headers"]
        assert methods["invert_match"] is True
        assert methods["string_match"]["safe_regex"]["regex"] == f"^({allow['header']['value'].replace(', ', '|')})$"
        assert route["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]["disabled"] is True
    # Before the catch-all 404, after the gRPC routes.
    grpc_routes = [r for r in routes if r.get("route", {}).get("cluster") == "api_server"]
    assert routes[-1]["match"] == {"prefix": "/"}
    assert routes[len(grpc_routes) : len(grpc_routes) + len(refused)] == refused


def test_downloads_may_take_longer_than_other_calls_but_not_stall(config):
    routes = connection_manager(config)["route_config"]["virtual_hosts"][0]["routes"]
    by_match = {r["match"].get("path") or r["match"].get("prefix"): r.get("route") for r in routes}
    download = by_match["/leo.generation.v1.GenerationService/GetGenerationAsset"]
    unary = by_match["/leo.generation.v1.GenerationService/"]
    assert (download["timeout"], download["idle_timeout"], unary["timeout"]) == ("300s", "60s", "15s")


def test_the_api_server_gets_the_public_service_and_reflection_only(config):
    routes = connection_manager(config)["route_config"]["virtual_hosts"][0]["routes"]
    forwarded = {r["match"].get("path") or r["match"]["prefix"]: r for r in routes if "route" in r}
    public = "/leo.generation.v1.GenerationService/"
    reflection = {
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    }
    assert {path for path in forwarded if not path.startswith(public)} == reflection
    # A reflection client keeps its stream open between questions: the buffer
    # filter, which waits for a whole request, would hold it until a timeout.
    for path in reflection:
        assert forwarded[path]["typed_per_filter_config"]["envoy.filters.http.buffer"]["disabled"] is True
    assert all("typed_per_filter_config" not in r for path, r in forwarded.items() if path.startswith(public))


@pytest.mark.parametrize(
    ("template", "matches", "misses"),
    [
        ("/v1/generations", ["/v1/generations"], ["/v1/generations/", "/v1/generations/x", "/v1/generationsX"]),
        (
            "/v1/generations/{generation_id}",
            ["/v1/generations/abc-1"],
            ["/v1/generations/a:cancel", "/v1/generations/a/b"],
        ),
        ("/v1/generations/{generation_id=*}:cancel", ["/v1/generations/abc:cancel"], ["/v1/generations/abc:watch"]),
        ("/v1/webhookSecret:rotate", ["/v1/webhookSecret:rotate"], ["/v1/webhookSecretXrotate"]),
    ],
)
def test_path_regex(template, matches, misses):
    regex = re.compile(envoy.path_regex(template))
    assert all(regex.match(path) for path in matches)
    assert not any(regex.match(path) for path in misses)


@pytest.mark.parametrize("template", ["/v1/{name=things/*}", "/v1/{path=**}", "/v1/*", "v1/x"])
def test_path_templates_it_cannot_express_are_refused(template):
    with pytest.raises(ValueError, match="unsupported"):
        envoy.path_regex(template)


# --- the web console --------------------------------------------------------


def routes_of(config: dict) -> list[dict]:
    return connection_manager(config)["route_config"]["virtual_hosts"][0]["routes"]


def console_file_routes(config: dict) -> dict[str, dict]:
    """By path, the routes that answer with a console file."""
    return {
        r["match"]["path"]: r
        for r in routes_of(config)
        if r.get("direct_response", {}).get("status") == 200 and r["match"].get("path", "").startswith("/console/")
    }


def added_headers(route: dict) -> dict[str, str]:
    headers = {h["header"]["key"]: h["header"]["value"] for h in route["response_headers_to_add"]}
    assert {h["append_action"] for h in route["response_headers_to_add"]} == {"OVERWRITE_IF_EXISTS_OR_ADD"}
    return headers


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for directive in policy.split(";"):
        name, *values = directive.split()
        assert name not in parsed, f"{name} twice"
        parsed[name] = values
    return parsed


def test_every_console_file_is_served_as_it_is_in_the_repo(config):
    files = sorted(p for p in envoy_console.CONSOLE_DIR.rglob("*") if p.is_file())
    routes = console_file_routes(config)

    assert len(routes) == len(files) and "/console/" in routes
    for path in files:
        relative = path.relative_to(envoy_console.CONSOLE_DIR).as_posix()
        route = routes["/console/" if relative == "index.html" else f"/console/{relative}"]
        assert base64.b64decode(route["direct_response"]["body"]["inline_bytes"]) == path.read_bytes()
        assert added_headers(route)["content-type"] == envoy_console.CONTENT_TYPES[path.suffix]
        [method] = route["match"]["headers"]
        assert (method["name"], method["string_match"]["safe_regex"]["regex"]) == (":method", "^(GET|HEAD)$")


def test_console_files_fit_envoys_direct_response_limit(config):
    limit = connection_manager(config)["route_config"]["max_direct_response_body_size_bytes"]
    assert limit == envoy_console.MAX_FILE_BYTES
    bodies = [r["direct_response"]["body"]["inline_bytes"] for r in console_file_routes(config).values()]
    assert max(len(base64.b64decode(body)) for body in bodies) <= limit


def test_every_console_file_carries_the_security_headers(config):
    for route in console_file_routes(config).values():
        headers = added_headers(route)
        assert {name: headers[name] for name in envoy_console.SECURITY_HEADERS} == envoy_console.SECURITY_HEADERS
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"


def test_the_console_csp_allows_its_own_origin_only_and_no_inline_code():
    policy = directives(envoy_console.CONTENT_SECURITY_POLICY)

    assert policy["default-src"] == ["'none'"]
    for fetched in ("script-src", "style-src", "img-src", "connect-src"):
        assert policy[fetched] == ["'self'"], fetched
    assert policy["form-action"] == policy["frame-ancestors"] == policy["base-uri"] == ["'none'"]
    assert policy["require-trusted-types-for"] == ["'script'"] and policy["trusted-types"] == ["'none'"]
    assert not [v for values in policy.values() for v in values if "unsafe" in v or v in ("*", "data:", "http:")]


def test_console_routes_skip_the_transcoder_and_rate_limit_and_compress(config):
    """The transcoder would answer 404; a page load must not spend the
    bucket requests without a key share; gzip is on for these routes only."""

    def matched(route: dict) -> str:
        return route["match"].get("path") or route["match"].get("prefix") or ""

    console = [r for r in routes_of(config) if matched(r).startswith("/console") or r["match"].get("path") == "/"]
    assert len(console) == len(console_file_routes(config)) + 3  # the 405 and two redirects
    for route in console:
        filters = route["typed_per_filter_config"]
        assert filters["envoy.filters.http.grpc_json_transcoder"]["disabled"] is True
        assert filters["envoy.filters.http.local_ratelimit"]["disabled"] is True
        assert "disabled" not in filters["envoy.filters.http.compressor"]
    [compressor] = [f for f in connection_manager(config)["http_filters"] if f["name"].endswith(".compressor")]
    assert compressor["disabled"] is True
    others = [r for r in routes_of(config) if r not in console]
    assert not [r for r in others if "envoy.filters.http.compressor" in r.get("typed_per_filter_config", {})]


def test_console_paths_are_none_of_the_apis(config):
    api_paths = [re.compile(envoy.path_regex(template)) for template in envoy.http_bindings()]
    for path in [*console_file_routes(config), "/console", "/"]:
        assert not any(regex.match(path) for regex in api_paths), path
    assert not [template for template in envoy.http_bindings() if template.startswith("/console")]


def test_other_methods_under_the_console_are_405_and_the_root_redirects(config):
    routes = routes_of(config)
    [refused] = [r for r in routes if r["match"].get("prefix") == "/console/"]
    [method] = refused["match"]["headers"]
    assert method["invert_match"] is True and method["string_match"]["safe_regex"]["regex"] == "^(GET|HEAD)$"
    assert refused["direct_response"]["status"] == 405
    assert added_headers(refused) == {"allow": "GET, HEAD"}
    redirects = {r["match"]["path"]: r["redirect"] for r in routes if "redirect" in r}
    assert redirects == {p: {"path_redirect": "/console/", "response_code": "FOUND"} for p in ("/", "/console")}


def test_the_console_routes_come_before_the_catch_all(config):
    routes = routes_of(config)
    console = [i for i, r in enumerate(routes) if "/console" in str(r["match"]) or r["match"].get("path") == "/"]
    catch_alls = [i for i, r in enumerate(routes) if r["match"].get("prefix") == "/"]
    assert catch_alls == [len(routes) - 2, len(routes) - 1] and routes[-1]["match"] == {"prefix": "/"}
    assert max(console) == len(routes) - 3


def test_native_grpc_calls_to_other_services_are_refused_unbuffered(config):
    """The buffer filter would wait for a streaming call's whole request
    before the 404 (UNIMPLEMENTED to gRPC) could be sent."""
    grpc_catch_all = routes_of(config)[-2]
    assert grpc_catch_all["match"]["headers"] == [
        {"name": "content-type", "string_match": {"prefix": "application/grpc"}}
    ]
    assert grpc_catch_all["direct_response"]["status"] == 404
    assert grpc_catch_all["typed_per_filter_config"]["envoy.filters.http.buffer"]["disabled"] is True


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("index.html", "x" * (envoy_console.MAX_FILE_BYTES + 1), "over"),
        ("logo.png", "not served", "serves"),
    ],
)
def test_console_files_envoy_cannot_serve_are_refused(tmp_path, name, content, error):
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=error):
        envoy_console.console_files(tmp_path)


def test_a_console_without_an_index_is_refused(tmp_path):
    (tmp_path / "app.js").write_text("")
    with pytest.raises(ValueError, match=r"no index\.html"):
        envoy_console.console_files(tmp_path)


# --- errors Envoy makes -----------------------------------------------------


def documented_reasons() -> dict[str, tuple[int, str]]:
    """HTTP status ("other" for the rest) -> (code, reason), from the table in docs/errors.md."""
    section = ERRORS_DOC.read_text().split("## Errors made by Envoy", 1)[1]
    rows = re.findall(r"^\| (\d{3}|other) \| (\d+) `\w+` \| `(\w+)` \|", section, re.M)
    return {status: (int(code), reason) for status, code, reason in rows}


def test_every_local_reply_has_the_documented_code_and_reason(config):
    replies = {}
    for mapper in connection_manager(config)["local_reply_config"]["mappers"]:
        [comparison] = [
            f["status_code_filter"]["comparison"]
            for f in mapper["filter"]["and_filter"]["filters"]
            if "status_code_filter" in f
        ]
        status = str(comparison["value"]["default_value"]) if comparison.get("op", "EQ") == "EQ" else "other"
        status = str(mapper.get("status_code", status))  # a mapper may answer another status than it matched
        body = mapper["body_format_override"]
        assert body["content_type"] == "application/json"
        *_, detail = body["json_format"]["details"]  # the ErrorInfo last (docs/decisions.md)
        assert detail == {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": detail["reason"],
            "domain": "generation.leo.example",
        }
        replies[status] = (body["json_format"]["code"], detail["reason"])

    assert replies == documented_reasons()
    assert set(replies) >= {"400", "404", "405", "408", "413", "429", "431", "503", "504", "other"}
    # No gRPC code maps to 413 or 431 in grpc-gateway's table: INVALID_ARGUMENT.
    assert replies["413"][0] == replies["431"][0] == 3


def test_a_429_says_when_a_token_is_back(config):
    """One refill interval, in every form a client reads: Retry-After, the
    JSON body's RetryInfo, and a native gRPC client's status details, which
    carry what the JSON body carries."""
    limiter = http_filter(config, "envoy.filters.http.local_ratelimit")
    refill = f"{envoy.RATE_LIMIT_REFILL_S}s"
    buckets = [limiter["token_bucket"], *(d["token_bucket"] for d in limiter["descriptors"])]
    assert {bucket["fill_interval"] for bucket in buckets} == {refill}
    headers = {h["header"]["key"]: h["header"]["value"] for h in limiter["response_headers_to_add"]}
    assert headers["retry-after"] == str(envoy.RATE_LIMIT_REFILL_S)

    [body] = [
        m["body_format_override"]["json_format"]
        for m in connection_manager(config)["local_reply_config"]["mappers"]
        if {"status_code_filter": {"comparison": {"op": "EQ", "value": {"default_value": 429}}}}
        in m["filter"]["and_filter"]["filters"]
    ]
    assert body["details"][0] == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": refill}
    status = status_pb2.Status.FromString(base64.b64decode(headers["grpc-status-details-bin"]))
    assert (status.code, status.message) == (body["code"], envoy.RATE_LIMITED_MESSAGE)
    assert [json_format.MessageToDict(detail) for detail in status.details] == body["details"]


def test_the_access_log_writes_paths_without_their_query(config):
    """A query may hold a signed link's signature or a key: the access log
    names the path only (Envoy's default line prints the query)."""
    [log] = connection_manager(config)["access_log"]
    line = log["typed_config"]["log_format"]["text_format_source"]["inline_string"]
    operators = set(re.findall(r"%[A-Z_]+(?:\([^)]*\))?%", line))
    assert "%PATH(NQ:ORIG_OR_PATH)%" in operators
    assert not {op for op in operators if "PATH" in op or "REFERER" in op or "AUTHORIZATION" in op} - {
        "%PATH(NQ:ORIG_OR_PATH)%"
    }


def test_the_edge_filter_carries_the_query_fields_of_the_protos(config):
    lua = http_filter(config, "envoy.filters.http.lua")["default_source_code"]["inline_string"]
    assert lua == envoy.edge_lua() and "\nedge.QUERY_FIELDS = {" in lua


# --- limits that must agree ---------------------------------------------------


def test_everything_envoy_forwards_fits_the_grpc_metadata_limit(config):
    lua = luajit21.LuaRuntime()
    lua.execute(envoy.EDGE_LUA.read_text())
    edge = lua.globals().edge
    options = dict(grpc_server.SERVER_OPTIONS)
    # gRPC counts 32 bytes more per header than Envoy; Envoy adds a few of its own.
    forwarded = edge.MAX_HEADER_BYTES + 32 * (edge.MAX_HEADERS + 10) + 2048
    assert options["grpc.max_metadata_size"] == options["grpc.absolute_max_metadata_size"] >= forwarded
    # The edge filter sees (and answers 431 to) headers before Envoy's codec limits do.
    manager = connection_manager(config)
    assert manager["max_request_headers_kb"] * 1024 > edge.MAX_HEADER_BYTES
    assert manager["common_http_protocol_options"]["max_headers_count"] > edge.MAX_HEADERS


def test_a_stalled_api_server_keeps_its_connection_longer_than_its_health(config):
    [cluster] = config["static_resources"]["clusters"]
    [check] = cluster["health_checks"]
    seconds = lambda duration: float(duration.removesuffix("s"))  # noqa: E731
    keepalive = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    ping_timeout = seconds(
        keepalive["explicit_http_config"]["http2_protocol_options"]["connection_keepalive"]["timeout"]
    )
    # Calls on the connection to a stalled api_server fail only after it has
    # failed a health check: until then they wait for it.
    assert ping_timeout > seconds(check["timeout"])
