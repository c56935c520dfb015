"""The echo: GenerationService from our own `gen/` stubs, answering made-up
generations with no database and no auth. It is the machine's ceiling for
the same contract.

  python -m bench.echo_server --port PORT [--log-rpcs]

--log-rpcs adds the project's per-RPC interceptor (leo_mesh.grpc_server.
RpcInterceptor) and its JSON log lines, to price them. Health reports SERVING
for GenerationService, so the project's Envoy config routes to it.

WatchGeneration sends the generation PENDING, then CANCELLED once
CancelGeneration names it: one call fans out to every watcher, as a final
state does in the mesh. `/bench.EchoStats/Served` answers a JSON count of the
calls served by method, so the bench can check what a load generator reports.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
import time
import uuid

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from leo_mesh import logs
from leo_mesh.grpc_server import SERVER_OPTIONS, RpcInterceptor

SERVICE_NAME = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name
STATS_METHOD = "/bench.EchoStats/Served"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


def made_up_generation(
    generation_id: str | None = None,
    *,
    prompt: str = "a lighthouse at dusk",
    status: int = generation_pb2.STATUS_COMPLETE,
) -> generation_pb2.Generation:
    """A generation shaped like the mesh's answers (a COMPLETE one has two
    images, each a signed link in `assets` and again in `images`)."""
    generation_id = generation_id or str(uuid.uuid4())
    now = _now()
    complete = status == generation_pb2.STATUS_COMPLETE
    links = [
        f"http://127.0.0.1:8080/v1/generations/{generation_id}/assets/{i}?expires=1800000000&signature={'s' * 43}"
        for i in range(2 if complete else 0)
    ]
    images = [generation_pb2.Image(url=link, width=1024, height=1024) for link in links]
    assets = [
        generation_pb2.Asset(url=link, content_type="image/png", width=1024, height=1024, byte_size=150_000)
        for link in links
    ]
    return generation_pb2.Generation(
        generation_id=generation_id,
        status=status,
        prompt=prompt,
        model=generation_pb2.MODEL_SDXL,
        width=1024,
        height=1024,
        images=images,
        assets=assets,
        kind=generation_pb2.KIND_IMAGE,
        attempts=1 if complete else 0,
        create_time=now,
        update_time=now,
        complete_time=now if complete else None,
    )


class EchoGenerationService(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(self) -> None:
        self.served: collections.Counter[str] = collections.Counter()
        self._cancelled: dict[str, asyncio.Event] = {}

    async def CreateGeneration(self, request, context):
        self.served["CreateGeneration"] += 1
        generation = made_up_generation(prompt=request.prompt, status=generation_pb2.STATUS_PENDING)
        return generation_pb2.CreateGenerationResponse(generation=generation)

    async def GetGeneration(self, request, context):
        self.served["GetGeneration"] += 1
        return generation_pb2.GetGenerationResponse(generation=made_up_generation(request.generation_id))

    async def ListGenerations(self, request, context):
        self.served["ListGenerations"] += 1
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        return generation_pb2.ListGenerationsResponse(
            generations=[made_up_generation() for _ in range(size)], next_page_token="bench-next-page"
        )

    def _event(self, generation_id: str) -> asyncio.Event:
        return self._cancelled.setdefault(generation_id, asyncio.Event())

    async def CancelGeneration(self, request, context):
        self.served["CancelGeneration"] += 1
        self._event(request.generation_id).set()
        generation = made_up_generation(request.generation_id, status=generation_pb2.STATUS_CANCELLED)
        return generation_pb2.CancelGenerationResponse(generation=generation)

    async def WatchGeneration(self, request, context):
        generation_id = request.generation_id
        cancelled = self._event(generation_id)
        pending = made_up_generation(generation_id, status=generation_pb2.STATUS_PENDING)
        yield generation_pb2.WatchGenerationResponse(generation=pending)
        await cancelled.wait()
        final = made_up_generation(generation_id, status=generation_pb2.STATUS_CANCELLED)
        yield generation_pb2.WatchGenerationResponse(generation=final)
        self.served["WatchGeneration"] += 1


def _stats_handler(service: EchoGenerationService) -> grpc.GenericRpcHandler:
    async def served(request: bytes, context) -> bytes:
        return json.dumps(dict(service.served)).encode()

    package, method = STATS_METHOD.strip("/").split("/")
    return grpc.method_handlers_generic_handler(package, {method: grpc.unary_unary_rpc_method_handler(served)})


async def serve(port: int, *, log_rpcs: bool) -> None:
    if log_rpcs:
        logs.configure("echo_server")
    interceptors = [RpcInterceptor()] if log_rpcs else []
    server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS)
    service = EchoGenerationService()
    generation_pb2_grpc.add_GenerationServiceServicer_to_server(service, server)
    server.add_generic_rpc_handlers([_stats_handler(service)])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"echo_server: cannot listen on 127.0.0.1:{port}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"event": "listening", "port": port, "log_rpcs": log_rpcs, "ts": time.time()}), flush=True)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-rpcs", action="store_true", help="add the project's per-RPC log interceptor")
    args = parser.parse_args()
    asyncio.run(serve(args.port, log_rpcs=args.log_rpcs))


if __name__ == "__main__":
    main()
