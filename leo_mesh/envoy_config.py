"""Renders envoy/envoy.yaml, the one Envoy config, from EnvoySettings.

  python -m leo_mesh.envoy_config OUT_PATH

renders from the environment (ENVOY_LISTEN_ADDRESS, API_SERVER_HOST,
ENVOY_RATE_LIMIT_PER_KEY_RPS, ...: see EnvoySettings and the README), each
defaulting to the local development value.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

import grpc
from google.api import annotations_pb2
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor
from google.rpc import error_details_pb2, status_pb2
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from leo.generation.v1 import generation_pb2  # noqa: F401  (registers the service's descriptors)
from leo_mesh import envoy_console
from leo_mesh.status import DOMAIN

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "envoy" / "envoy.yaml"
EDGE_LUA = ROOT / "envoy" / "edge.lua"
DESCRIPTOR = ROOT / "gen" / "leo-api.binpb"
PUBLIC_SERVICE = "leo.generation.v1.GenerationService"


class EnvoySettings(BaseSettings):
    """What is rendered into the template: addresses, paths and rate limits."""

    model_config = SettingsConfigDict(extra="ignore")

    envoy_listen_address: str = "127.0.0.1"
    envoy_listen_port: int = 8080
    envoy_admin_address: str = "127.0.0.1"
    envoy_admin_port: int = 9901
    api_server_host: str = "127.0.0.1"
    api_server_port: int = 50051
    envoy_descriptor_path: Path = DESCRIPTOR
    # Token bucket of each API key: refilled by RPS every second, holding at most BURST.
    envoy_rate_limit_per_key_rps: int = Field(50, ge=1)
    envoy_rate_limit_per_key_burst: int = Field(100, ge=1)
    # Token bucket of the whole listener, taken from by every request.
    envoy_rate_limit_global_rps: int = Field(1000, ge=1)
    envoy_rate_limit_global_burst: int = Field(2000, ge=1)
    # An OTLP/gRPC collector (http://host:port), usually the one of the
    # services' OTEL_EXPORTER_OTLP_ENDPOINT: set, Envoy sends its own span of
    # each request there (unset: no tracing in Envoy; traceparent headers
    # pass through unchanged).
    envoy_otlp_endpoint: str | None = None

    @property
    def otlp_collector(self) -> tuple[str, int] | None:
        """(host, port) of the collector, or None: no tracing."""
        if not self.envoy_otlp_endpoint:
            return None
        url = urlsplit(self.envoy_otlp_endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("ENVOY_OTLP_ENDPOINT must be http(s)://host:port")
        return url.hostname, url.port or 4317

    @model_validator(mode="after")
    def _burst_holds_a_refill(self):
        for scope in ("per_key", "global"):
            if getattr(self, f"envoy_rate_limit_{scope}_burst") < getattr(self, f"envoy_rate_limit_{scope}_rps"):
                name = f"ENVOY_RATE_LIMIT_{scope.upper()}"
                raise ValueError(f"{name}_BURST must be at least {name}_RPS")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides) -> EnvoySettings:
        """Settings from the process environment, then `env` (variable names
        as keys, as Mesh(env=...) holds them), then `overrides` (field names)."""
        given = {name: env[name.upper()] for name in cls.model_fields if name.upper() in env}
        return cls(**{**given, **overrides})


_VARIABLE = re.compile(r"\{(\w+)(=\*)?\}")


def _bindings(service: str) -> Iterator[tuple[Descriptor, str, str, str]]:
    """(request message, HTTP method, path template, body) of each of the
    service's google.api.http bindings (additional ones included), from the
    generated code's descriptors (the same protos as the descriptor set
    Envoy loads)."""
    for method in descriptor_pool.Default().FindServiceByName(service).methods:
        rule = method.GetOptions().Extensions[annotations_pb2.http]
        for binding in [rule, *rule.additional_bindings]:
            verb = binding.WhichOneof("pattern")
            if verb is None:
                continue
            if verb == "custom":
                verb, path = binding.custom.kind.upper(), binding.custom.path
            else:
                verb, path = verb.upper(), getattr(binding, verb)
            yield method.input_type, verb, path, binding.body


def http_bindings(service: str = PUBLIC_SERVICE) -> dict[str, list[str]]:
    """The service's google.api.http paths and, for each, its HTTP methods."""
    paths: dict[str, set[str]] = {}
    for _, verb, path, _ in _bindings(service):
        paths.setdefault(path, set()).add(verb)
    return {path: sorted(verbs) for path, verbs in paths.items()}


def query_fields(service: str = PUBLIC_SERVICE) -> dict[str, dict[str, str | None]]:
    """By HTTP method, each query parameter name (a field's proto and JSON
    spelling) that the transcoder binds to a request field of one of the
    method's routes: None where grpc-gateway binds no query parameter to
    that field (a path variable, or any field of a route whose body is
    "*"), else the field's name. The edge filter drops the first and
    refuses the second given twice (envoy/edge.lua, edge.QUERY_FIELDS).

    One table per method needs no path matching at the edge (the
    transcoder matches more spellings of a path than a pattern would); it
    is exact while no name is bound from the query on one route of a
    method and not on another, and while query fields are single scalars:
    rules that break either are refused here."""
    tables: dict[str, dict[str, str | None]] = {}
    for request, verb, path, body in _bindings(service):
        variables = {name for name, _ in _VARIABLE.findall(path)}
        table = tables.setdefault(verb, {})
        for field in request.fields:
            bound = None if body == "*" or field.name in variables or field.name == body else field.name
            if bound and (field.is_repeated or field.type == field.TYPE_MESSAGE):
                raise ValueError(f"{request.full_name}.{field.name}: only single scalars may come from the query")
            for name in (field.name, field.json_name):
                if table.setdefault(name, bound) != bound:
                    raise ValueError(f"{verb} {path}: {name} is a query field of one route and not of another")
    return tables


def _lua_table(table: Mapping[str, object]) -> str:
    """A Lua table constructor of a mapping of names to names, None, or such mappings."""

    def value(item: object) -> str:
        if isinstance(item, Mapping):
            return _lua_table(item)
        return "false" if item is None else json.dumps(item)

    return "{" + ", ".join(f"[{json.dumps(name)}] = {value(item)}" for name, item in table.items()) + "}"


def edge_lua() -> str:
    """envoy/edge.lua with the query fields of the descriptor's routes."""
    return EDGE_LUA.read_text() + f"\nedge.QUERY_FIELDS = {_lua_table(query_fields())}\n"


def path_regex(template: str) -> str:
    """An RE2 regex of the paths a google.api.http path template matches.

    A variable is one segment without ':' (ids are UUIDs), so a template and
    the same template with a ':verb' never match the same path. Only the
    single-segment forms ({name}, {name=*}) are supported.
    """
    literals = _VARIABLE.split(template)[::3]
    if any(set(literal) & set("{}*") for literal in literals) or not template.startswith("/"):
        raise ValueError(f"unsupported google.api.http path template: {template}")
    return "^" + "[^/:]+".join(re.escape(literal) for literal in literals) + "$"


def method_not_allowed_routes() -> Iterator[dict]:
    """One route per HTTP path: any other method gets 405 and an Allow header.

    Matched before the transcoder, which the route switches off (it would
    answer 404); the 405's JSON body comes from local_reply_config."""
    for template, methods in http_bindings().items():
        yield {
            "match": {
                "safe_regex": {"regex": path_regex(template)},
                "headers": [
                    {
                        "name": ":method",
                        "string_match": {"safe_regex": {"regex": f"^({'|'.join(methods)})$"}},
                        "invert_match": True,
                    }
                ],
            },
            "direct_response": {"status": 405, "body": {"inline_string": "Method Not Allowed"}},
            "response_headers_to_add": [
                {"header": {"key": "allow", "value": ", ".join(methods)}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            ],
            "typed_per_filter_config": {
                "envoy.filters.http.grpc_json_transcoder": {
                    "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                    "disabled": True,
                }
            },
        }


# Methods Envoy's HTTP/1 codec routes; it refuses others (QUERY without a
# body, WebDAV methods) with a local 400 before any route.
ROUTED_METHODS = "^(GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS|CONNECT|TRACE)$"


def method_not_allowed_replies() -> Iterator[dict]:
    """One local-reply mapper per HTTP path, turning that codec 400 into the
    405 (with Allow) the path's route gives any other wrong method."""
    for template, methods in http_bindings().items():
        with_query = path_regex(template).removesuffix("$") + r"(\?.*)?$"
        yield {
            "filter": {
                "and_filter": {
                    "filters": [
                        {"status_code_filter": {"comparison": {"op": "EQ", "value": {"default_value": 400}}}},
                        {
                            "header_filter": {
                                "header": {
                                    "name": ":method",
                                    "string_match": {"safe_regex": {"regex": ROUTED_METHODS}},
                                    "invert_match": True,
                                    "treat_missing_header_as_empty": True,
                                }
                            }
                        },
                        {
                            "header_filter": {
                                "header": {"name": ":path", "string_match": {"safe_regex": {"regex": with_query}}}
                            }
                        },
                    ]
                }
            },
            "status_code": 405,
            "headers_to_add": [
                {"header": {"key": "allow", "value": ", ".join(methods)}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            ],
            "body_format_override": {
                "json_format": {
                    "code": 12,
                    "message": "Method Not Allowed",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "METHOD_NOT_ALLOWED",
                            "domain": DOMAIN,
                        }
                    ],
                },
                "content_type": "application/json",
            },
        }


def _block_list(template_text: str, name: str, items: list[dict]) -> str:
    """`items` as YAML sequence entries (one JSON object a line) indented like
    the line of the placeholder `name`."""
    indent = re.search(rf"^( *)\$\{{{name}\}}$", template_text, re.M)
    if indent is None:
        raise KeyError(f"{name} must stand alone on its line")
    return ("\n" + indent[1]).join(f"- {json.dumps(item)}" for item in items)


OTLP_CLUSTER = "otel_collector"
# The edge filter's dynamic metadata namespace (envoy/edge.lua's METADATA).
EDGE_METADATA = "leo.edge"
ENVOY_SERVICE_NAME = "envoy"


def tracing_config(collector: tuple[str, int] | None) -> tuple[dict | None, list[dict]]:
    """The connection manager's `tracing` and the collector's cluster (none
    without a collector). Envoy continues a request's W3C traceparent (or
    starts a trace), reports its span and passes its own traceparent on."""
    if collector is None:
        return None, []
    host, port = collector
    tracing = {
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                "grpc_service": {"envoy_grpc": {"cluster_name": OTLP_CLUSTER}, "timeout": "2s"},
                "service_name": ENVOY_SERVICE_NAME,
            },
        },
        "spawn_upstream_span": False,
        # The span's http.url without its query (signed links, keys sent by
        # mistake): the edge filter's copy of the URL replaces Envoy's.
        "custom_tags": [
            {
                "tag": "http.url",
                "metadata": {
                    "kind": {"request": {}},
                    "metadata_key": {"key": EDGE_METADATA, "path": [{"key": "url"}]},
                },
            }
        ],
    }
    cluster = {
        "name": OTLP_CLUSTER,
        "type": "STRICT_DNS",
        "connect_timeout": "2s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": OTLP_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}
            ],
        },
    }
    return tracing, [cluster]


def _optional_key(template_text: str, name: str, key: str, value: dict | None) -> str:
    """`key: value` (value as one JSON line) where the placeholder `name`
    stands alone on its line, or nothing when value is None."""
    if re.search(rf"^( *)\$\{{{name}\}}$", template_text, re.M) is None:
        raise KeyError(f"{name} must stand alone on its line")
    return "" if value is None else f"{key}: {json.dumps(value)}"


# Seconds between two refills of a token bucket: after a 429, the time
# until the bucket has a token again.
RATE_LIMIT_REFILL_S = 1
# What Envoy's local rate limiter says (grpc-message, the JSON message).
RATE_LIMITED_MESSAGE = "local_rate_limited"


def rate_limited_status_details() -> str:
    """grpc-status-details-bin of the rate limiter's reply: the google.rpc.Status
    a JSON client gets as the body (RetryInfo, then ErrorInfo), base64."""
    status = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message=RATE_LIMITED_MESSAGE)
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.FromSeconds(RATE_LIMIT_REFILL_S)
    for detail in (retry, error_details_pb2.ErrorInfo(reason="RATE_LIMITED", domain=DOMAIN)):
        status.details.add().Pack(detail)
    return base64.b64encode(status.SerializeToString()).decode()


def render(settings: EnvoySettings | None = None) -> str:
    """The config text; raises KeyError/ValueError on a missing or malformed placeholder."""
    settings = settings or EnvoySettings()
    text = TEMPLATE.read_text()
    values = {
        "LISTEN_ADDRESS": settings.envoy_listen_address,
        "LISTEN_PORT": settings.envoy_listen_port,
        "ADMIN_ADDRESS": settings.envoy_admin_address,
        "ADMIN_PORT": settings.envoy_admin_port,
        "API_SERVER_HOST": settings.api_server_host,
        "API_SERVER_PORT": settings.api_server_port,
        "DESCRIPTOR_PATH": os.fspath(settings.envoy_descriptor_path),
        "RATE_LIMIT_PER_KEY_RPS": settings.envoy_rate_limit_per_key_rps,
        "RATE_LIMIT_PER_KEY_BURST": settings.envoy_rate_limit_per_key_burst,
        "RATE_LIMIT_GLOBAL_RPS": settings.envoy_rate_limit_global_rps,
        "RATE_LIMIT_GLOBAL_BURST": settings.envoy_rate_limit_global_burst,
        "RATE_LIMIT_REFILL_S": RATE_LIMIT_REFILL_S,
        "RATE_LIMITED_STATUS_DETAILS": rate_limited_status_details(),
        # A JSON string is a YAML double-quoted scalar: the rendered config
        # carries the script and needs no other file.
        "EDGE_LUA": json.dumps(edge_lua()),
        "MAX_DIRECT_RESPONSE_BYTES": envoy_console.MAX_FILE_BYTES,
    }
    if "METHOD_NOT_ALLOWED_ROUTES" in text:
        routes = list(method_not_allowed_routes())
        values["METHOD_NOT_ALLOWED_ROUTES"] = _block_list(text, "METHOD_NOT_ALLOWED_ROUTES", routes)
    if "CONSOLE_ROUTES" in text:
        routes = list(envoy_console.console_routes())
        values["CONSOLE_ROUTES"] = _block_list(text, "CONSOLE_ROUTES", routes)
    if "METHOD_NOT_ALLOWED_REPLIES" in text:
        replies = list(method_not_allowed_replies())
        values["METHOD_NOT_ALLOWED_REPLIES"] = _block_list(text, "METHOD_NOT_ALLOWED_REPLIES", replies)
    tracing, clusters = tracing_config(settings.otlp_collector)
    if "${TRACING}" in text:
        values["TRACING"] = _optional_key(text, "TRACING", "tracing", tracing)
    if "${TRACING_CLUSTERS}" in text:
        values["TRACING_CLUSTERS"] = _block_list(text, "TRACING_CLUSTERS", clusters)
    # An optional block left empty leaves its indentation alone on a line.
    return re.sub(r"^ +$", "", Template(text).substitute(values), flags=re.M)


def write_config(path: str | os.PathLike[str], settings: EnvoySettings | None = None) -> Path:
    """Renders with render(settings) into path and returns it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(settings))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(write_config(argv[0], EnvoySettings()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
