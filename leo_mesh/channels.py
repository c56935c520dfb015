"""Channels between the mesh's own services."""

from __future__ import annotations

import grpc

# gRPC's default reconnect backoff grows to two minutes, so a peer that comes
# back after an outage would sit unused for seconds; retry connecting within
# a second instead (calls also wait for the connection: wait_for_ready).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # Keepalive within what our servers permit (leo_mesh.grpc_server).
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]


def internal_channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
