"""The mock AI's composition root: one worker of the AI pool."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from grpc import aio

from leo.ai.v1 import ai_pb2, ai_pb2_grpc
from leo.callback.v1 import callback_pb2_grpc
from leo_mesh.channels import internal_channel
from leo_mesh.grpc_server import GrpcApp, GrpcService, Service
from leo_mesh.media.settings import MediaSettings
from leo_mesh.media.store import MediaStore, open_store
from leo_mesh.telemetry.exposition import MetricsEndpoint
from mock_ai_server.heartbeat import Heartbeats
from mock_ai_server.jobs import Jobs
from mock_ai_server.service import AIService
from mock_ai_server.settings import Settings

SERVICE_NAME = ai_pb2.DESCRIPTOR.services_by_name["AIService"].full_name
# Its traces' service.name unless OTEL_SERVICE_NAME says otherwise.
OTEL_SERVICE_NAME = "mock-ai-server"


log = logging.getLogger("mock_ai_server")


@dataclass
class MockAi(GrpcService):
    settings: Settings
    jobs: Jobs
    heartbeats: Heartbeats
    grpc: GrpcApp
    callback_channel: aio.Channel
    store: MediaStore
    metrics: MetricsEndpoint

    name = "mock_ai_server"

    async def start(self) -> None:
        self.metrics.start()
        await self.store.prepare()
        await self.grpc.start()
        self.heartbeats.address = self.settings.advertise_address(self.grpc.port)
        self.grpc.background.start("progress reports", self.jobs.reporter.run())
        self.grpc.background.start("heartbeats", self.heartbeats.run())

    async def drain(self) -> None:
        """Told to stop (SIGTERM): take no new job, give the ones waiting for
        a slot back to the mesh, finish the running ones (their results
        delivered), then leave the pool."""
        given_back = self.jobs.drain()
        log.info("draining", extra={"given_back": len(given_back), "running": len(self.jobs)})
        await self.heartbeats.beat()
        try:
            await asyncio.wait_for(self.jobs.finished(), timeout=self.settings.mock_ai_drain_timeout_s)
        except TimeoutError:
            log.warning("jobs still running when the drain ended", extra={"jobs": len(self.jobs)})
        await self.heartbeats.beat(leaving=True)
        await self.grpc.drain()

    async def stop(self) -> None:
        """Drop every held job (the mesh queues them again when this worker's
        lease ends, or at once if it left the pool)."""
        await self.grpc.background.stop(0)
        await self.jobs.close()
        await self.store.close()
        await self.callback_channel.close()
        self.metrics.stop()


def bootstrap(settings: Settings, media: MediaSettings | None = None) -> MockAi:
    """Wire the mock AI (call it in the event loop that will run it)."""
    media = media or MediaSettings()
    store = open_store(media)
    channel = internal_channel(settings.callback_server_address)
    callbacks = callback_pb2_grpc.CallbackServiceStub(channel)
    worker_id = uuid.uuid4()
    heartbeats = Heartbeats(callbacks, settings, worker_id)
    jobs = Jobs(settings, callbacks, store, heartbeat=lambda: heartbeats.number)
    heartbeats.jobs = jobs
    servicer = AIService(jobs, settings, worker_id)
    server = GrpcApp(
        "mock_ai_server",
        [Service(SERVICE_NAME, lambda s: ai_pb2_grpc.add_AIServiceServicer_to_server(servicer, s))],
        host=settings.listen_host,
        port=settings.mock_ai_port,
    )
    return MockAi(
        settings,
        jobs,
        heartbeats,
        server,
        channel,
        store,
        MetricsEndpoint(settings.listen_host, settings.mock_ai_metrics_port),
    )
