"""gRPC channels of the client: TLS or plaintext, and retries by gRPC's own service config.

Every GenerationService call but WatchGeneration is retried on UNAVAILABLE
(the server was not reached, or the connection broke before an answer) with
exponential backoff, by the gRPC library itself. That is safe for every
call: reads are idempotent, and the client gives every create a request_id,
so a retried create returns the generation the first attempt made.

WatchGeneration is retried by the wait itself (following.py), never by the
channel: a retried attempt of a stream whose server went away before its
first answer (a watch opened as the api_server shuts down) waits forever in
grpcio 1.85, even once the server is back, and a wait's watch has no deadline.
"""

from __future__ import annotations

import json
from importlib import metadata

import grpc

from leo_client.errors import ConfigurationError
from leo_client.settings import ClientSettings

SERVICE = "leo.generation.v1.GenerationService"

RETRY_POLICY = {
    # gRPC allows at most 5 attempts.
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
SERVICE_CONFIG = {
    "methodConfig": [
        {"name": [{"service": SERVICE}], "retryPolicy": RETRY_POLICY},
        # The more specific name wins: no retry policy for the watch.
        {"name": [{"service": SERVICE, "method": "WatchGeneration"}]},
    ]
}


def _version() -> str:
    try:
        return metadata.version("leo-generation-mesh")
    except metadata.PackageNotFoundError:
        return "unknown"


OPTIONS: list[tuple[str, str | int]] = [
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    ("grpc.enable_retries", 1),
    ("grpc.primary_user_agent", f"leo-client/{_version()}"),
    # Long watches: find a dead connection within about 40 s. Our servers
    # (and Envoy) accept a ping every 30 s.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]


def credentials(settings: ClientSettings) -> grpc.ChannelCredentials | None:
    """TLS credentials when TLS is on, else None (plaintext)."""
    if not settings.tls:
        return None
    try:
        roots = settings.ca_file.read_bytes() if settings.ca_file else None
    except OSError as exc:
        raise ConfigurationError(f"cannot read the CA file {settings.ca_file}: {exc.strerror}") from exc
    return grpc.ssl_channel_credentials(root_certificates=roots)


def sync_channel(target: str, creds: grpc.ChannelCredentials | None) -> grpc.Channel:
    """A blocking channel to `target`: TLS with `creds`, plaintext without."""
    if creds is None:
        return grpc.insecure_channel(target, options=OPTIONS)
    return grpc.secure_channel(target, creds, options=OPTIONS)


def aio_channel(target: str, creds: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
    """An asyncio channel to `target` (make it inside the event loop that uses it)."""
    if creds is None:
        return grpc.aio.insecure_channel(target, options=OPTIONS)
    return grpc.aio.secure_channel(target, creds, options=OPTIONS)
