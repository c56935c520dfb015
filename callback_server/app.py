"""The callback server's composition root."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from callback_server.service import CallbackService
from callback_server.settings import Settings
from leo.callback.v1 import callback_pb2, callback_pb2_grpc
from leo_mesh.convert import webhook_body
from leo_mesh.db.generations import GenerationStore
from leo_mesh.db.pool import Database
from leo_mesh.db.workers import WorkerStore
from leo_mesh.grpc_server import GrpcApp, GrpcService, Service
from leo_mesh.media.links import AssetLinks
from leo_mesh.media.settings import MediaSettings
from leo_mesh.telemetry.exposition import MetricsEndpoint
from leo_mesh.telemetry.gauges import DatabaseGauges

SERVICE_NAME = callback_pb2.DESCRIPTOR.services_by_name["CallbackService"].full_name
# Its traces' service.name unless OTEL_SERVICE_NAME says otherwise.
OTEL_SERVICE_NAME = "callback-server"


@dataclass
class CallbackServer(GrpcService):
    settings: Settings
    db: Database
    # The workers' heartbeats renew their leases on connections of their
    # own: completions and progress filling the main pool must not make a
    # live worker's lease run out (and its jobs run twice).
    leases: Database
    store: GenerationStore
    grpc: GrpcApp
    gauges: DatabaseGauges
    metrics: MetricsEndpoint

    name = "callback_server"

    async def start(self) -> None:
        await self.db.open()
        await self.leases.open()
        self.metrics.start()
        await self.grpc.start()
        self.grpc.background.start("gauges", self.gauges.run())

    async def stop(self) -> None:
        await self.grpc.background.stop(0)
        await self.leases.close()
        await self.db.close()
        self.metrics.stop()


def bootstrap(settings: Settings, media: MediaSettings | None = None) -> CallbackServer:
    """Wire the callback server (call it in the event loop that will run it).
    `media` signs the links of webhook bodies."""
    links = AssetLinks.from_settings(media or MediaSettings())
    db = Database(
        settings.database_url,
        name="callback_server",
        max_size=settings.db_pool_size,
        max_waiting=settings.db_max_waiting,
    )
    store = GenerationStore(
        db,
        webhook_body=functools.partial(webhook_body, links=links),
        completion_deadline_s=settings.completion_deadline_s,
    )
    leases = Database(settings.database_url, name="callback_server leases", max_size=2)
    servicer = CallbackService(store, WorkerStore(leases), settings)
    server = GrpcApp(
        "callback_server",
        [Service(SERVICE_NAME, lambda s: callback_pb2_grpc.add_CallbackServiceServicer_to_server(servicer, s))],
        host=settings.listen_host,
        port=settings.callback_server_port,
    )
    metrics = MetricsEndpoint(settings.listen_host, settings.callback_server_metrics_port)
    return CallbackServer(settings, db, leases, store, server, DatabaseGauges(db, backlog=False), metrics)
