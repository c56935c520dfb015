"""What the bench sends: the requests, and the load generator runs that send them."""

from __future__ import annotations

import json
from collections.abc import Callable

from bench import stacks
from bench.loadgen import GRPC_HEADERS, H2load, Wrk, grpc_frame
from bench.params import Params
from leo.generation.v1 import generation_pb2

SERVICE_PATH = "/leo.generation.v1.GenerationService"
# The smallest size the API takes: the mock AI really renders what it is
# asked (Pillow, about 34 ms of CPU per 1024x1024 image), and the bench
# measures the mesh, not the renderer.
SIDE = 64
CREATE = generation_pb2.CreateGenerationRequest(
    prompt="bench: a lighthouse at dusk", model=generation_pb2.MODEL_SDXL, width=SIDE, height=SIDE
)
CREATE_JSON = json.dumps({"prompt": CREATE.prompt, "model": "MODEL_SDXL", "width": SIDE, "height": SIDE})
LIST_PAGE_SIZE = 20
# Closed-loop load, as the review measured it.
H2LOAD_CLIENTS, H2LOAD_STREAMS = 16, 8
WRK_CONNECTIONS = 32


def grpc_load(method: str, message) -> Callable[[stacks.Target, Params], H2load]:
    """Closed-loop h2load of one gRPC method, sending `message` again and again."""

    def make(target: stacks.Target, params: Params) -> H2load:
        return H2load(
            url=f"http://{target.grpc_address}{SERVICE_PATH}/{method}",
            clients=H2LOAD_CLIENTS,
            streams=H2LOAD_STREAMS,
            duration_s=params.duration_s,
            warmup_s=params.warmup_s,
            body=grpc_frame(message),
            headers={**GRPC_HEADERS, **target.headers},
        )

    return make


def fixed_rate_split(rate: float, max_clients: int) -> tuple[int, int]:
    """(clients, requests a second each) whose product is within 2% of `rate`
    (h2load's --rps is per client and whole), with as many clients as can be,
    so that the requests are spread over the second; else the closest."""

    def error(clients: int) -> float:
        return abs(clients * max(1, round(rate / clients)) - rate)

    candidates = range(1, max_clients + 1)
    close = [c for c in candidates if error(c) <= max(0.5, 0.02 * rate)]
    clients = max(close) if close else min(candidates, key=error)
    return clients, max(1, round(rate / clients))


def grpc_fixed_rate(method: str, message) -> Callable[[stacks.Target, Params, float], H2load]:
    """The same at a fixed total rate (open loop)."""

    def make(target: stacks.Target, params: Params, rate: float) -> H2load:
        clients, rps = fixed_rate_split(rate, max_clients=16)
        return H2load(
            url=f"http://{target.grpc_address}{SERVICE_PATH}/{method}",
            clients=clients,
            streams=256,  # never the limit: a slow answer must not hold back the next request
            duration_s=params.fixed_rate_duration_s,
            warmup_s=params.warmup_s,
            rps=rps,
            body=grpc_frame(message),
            headers={**GRPC_HEADERS, **target.headers},
        )

    return make


def json_create(target: stacks.Target, params: Params) -> Wrk:
    """Closed-loop JSON creates through Envoy."""
    return Wrk(
        url=f"{target.json_url}/v1/generations",
        connections=WRK_CONNECTIONS,
        duration_s=params.duration_s,
        method="POST",
        body=CREATE_JSON,
        headers={"content-type": "application/json", **target.headers},
    )


def json_create_fixed_rate(target: stacks.Target, params: Params, rate: float) -> H2load:
    # HTTP/1.1 with a body: one request in flight per connection, so many connections.
    clients, rps = fixed_rate_split(rate, max_clients=64)
    return H2load(
        url=f"{target.json_url}/v1/generations",
        clients=clients,
        duration_s=params.fixed_rate_duration_s,
        warmup_s=params.warmup_s,
        rps=rps,
        body=CREATE_JSON.encode(),
        headers={"content-type": "application/json", **target.headers},
        http1=True,
    )
