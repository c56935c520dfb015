"""The mock AI's composition root."""

from __future__ import annotations

from dataclasses import dataclass

from grpc import aio

from leo.ai.v1 import ai_pb2, ai_pb2_grpc
from leo.callback.v1 import callback_pb2_grpc
from leo_mesh.channels import internal_channel
from leo_mesh.grpc_server import GrpcApp, GrpcService, Service
from leo_mesh.media.settings import MediaSettings
from leo_mesh.media.store import MediaStore, open_store
from leo_mesh.telemetry.exposition import MetricsEndpoint
from mock_ai_server.jobs import Jobs
from mock_ai_server.service import AIService
from mock_ai_server.settings import Settings

SERVICE_NAME = ai_pb2.DESCRIPTOR.services_by_name["AIService"].full_name
# Its traces' service.name unless OTEL_SERVICE_NAME says otherwise.
OTEL_SERVICE_NAME = "mock-ai-server"


@dataclass
class MockAi(GrpcService):
    settings: Settings
    jobs: Jobs
    grpc: GrpcApp
    callback_channel: aio.Channel
    store: MediaStore
    metrics: MetricsEndpoint

    name = "mock_ai_server"

    async def start(self) -> None:
        self.metrics.start()
        await self.store.prepare()
        await self.grpc.start()
        self.grpc.background.start("progress reports", self.jobs.reporter.run())

    async def stop(self) -> None:
        """Drop every held job (the api_server's completion deadline recovers them)."""
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
    jobs = Jobs(settings, callback_pb2_grpc.CallbackServiceStub(channel), store)
    servicer = AIService(jobs, settings)
    server = GrpcApp(
        "mock_ai_server",
        [Service(SERVICE_NAME, lambda s: ai_pb2_grpc.add_AIServiceServicer_to_server(servicer, s))],
        host=settings.listen_host,
        port=settings.mock_ai_port,
    )
    return MockAi(
        settings, jobs, server, channel, store, MetricsEndpoint(settings.listen_host, settings.mock_ai_metrics_port)
    )
