"""The api_server's composition root: every object it runs, wired once.

app = bootstrap(Settings())          # or with a fake AI stub, in tests
await app.start(); …; await app.drain(); await app.stop()
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from api_server.auth import Authenticator, AuthInterceptor
from api_server.dispatcher import Dispatcher, Stubs, Workers
from api_server.queue_view import QueueView
from api_server.service import GenerationService
from api_server.settings import Settings, WebhookSettings
from api_server.watch import ChangeFeed, FeedListeners, Watches
from api_server.webhook_sender import WebhookSender
from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from leo_mesh import logs
from leo_mesh.convert import webhook_body
from leo_mesh.db import queue_metrics
from leo_mesh.db.generations import GenerationStore
from leo_mesh.db.keys import KeyStore
from leo_mesh.db.pool import Database
from leo_mesh.db.queue import QueueStore
from leo_mesh.db.urls import libpq_url
from leo_mesh.db.webhooks import WebhookStore
from leo_mesh.grpc_server import GrpcApp, GrpcService, Service, serve
from leo_mesh.media.links import AssetLinks
from leo_mesh.media.settings import MediaSettings
from leo_mesh.media.store import MediaStore, open_store
from leo_mesh.telemetry import tracing
from leo_mesh.telemetry.exposition import MetricsEndpoint
from leo_mesh.telemetry.gauges import DatabaseGauges
from leo_mesh.telemetry.queue import QueueCollector

SERVICE_NAME = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name
# Its traces' service.name unless OTEL_SERVICE_NAME says otherwise.
OTEL_SERVICE_NAME = "api-server"
# A download or a watch may come with a signed link instead of a key.
SIGNED_METHODS = {
    f"/{SERVICE_NAME}/{method}": lambda request: bool(request.signature)
    for method in ("GetGenerationAsset", "WatchGeneration")
}


@dataclass
class ApiServer(GrpcService):
    settings: Settings
    webhook_settings: WebhookSettings
    db: Database
    store: GenerationStore
    authenticator: Authenticator
    dispatcher: Dispatcher
    sender: WebhookSender
    feed: ChangeFeed
    watches: Watches
    grpc: GrpcApp
    workers: Workers
    media: MediaStore
    gauges: DatabaseGauges
    # None: a worker process, whose metrics its supervisor serves.
    metrics: MetricsEndpoint | None

    name = "api_server"

    async def start(self, *, background: bool = True) -> None:
        """Serve; `background=False` (tests) leaves the dispatcher, the
        webhook sender and the change feed to be driven by the caller."""
        await self.db.open()
        if self.metrics is not None:
            self.metrics.start()
        await self.grpc.start()
        if not background:
            return
        tasks = self.grpc.background
        tasks.start("dispatcher", self.dispatcher.run(), finishes=True)
        tasks.start("webhook sender", self.sender.run(), finishes=True)
        tasks.start("change feed", self.feed.run())
        tasks.start("watch reads", self.watches.run())
        tasks.start("watch places", self.watches.run_places())
        tasks.start("gauges", self.gauges.run())

    async def drain(self) -> None:
        async def end_watches() -> None:
            self.watches.drain()

        await self.grpc.drain(end_watches)

    async def stop(self) -> None:
        # Let the current rounds record their results; if one overruns, a
        # row claimed but not recorded becomes claimable again after its lease.
        self.dispatcher.stop()
        self.sender.stop()
        grace = max(self.settings.dispatch_rpc_timeout_s, self.webhook_settings.timeout_s) + 4
        await self.grpc.background.stop(grace)
        await self.sender.close()
        await self.media.close()
        await self.workers.close()
        await self.db.close()
        if self.metrics is not None:
            self.metrics.stop()


def bootstrap(
    settings: Settings,
    *,
    webhook_settings: WebhookSettings | None = None,
    media_settings: MediaSettings | None = None,
    ai: Stubs | None = None,
    serve_metrics: bool = True,
) -> ApiServer:
    """Wire the api_server (call it in the event loop that will run it).
    `ai` makes the AIService stub of a worker's address instead of a
    channel to it: a test stub.
    `serve_metrics=False`: a worker process (its supervisor serves them)."""
    webhook_settings = webhook_settings or WebhookSettings()
    media_settings = media_settings or MediaSettings()
    links = AssetLinks.from_settings(media_settings)
    media = open_store(media_settings)
    db = Database(
        settings.database_url, name="api_server", max_size=settings.db_pool_size, max_waiting=settings.db_max_waiting
    )
    body = functools.partial(webhook_body, links=links)
    store = GenerationStore(db, webhook_body=body, completion_deadline_s=settings.completion_deadline_s)
    queue = QueueStore(db, webhook_body=body)
    workers = Workers(settings, ai)
    dispatcher = Dispatcher(queue, workers, settings)
    view = QueueView(queue, max_age_s=settings.queue_snapshot_s, default_duration_s=settings.queue_default_duration_s)
    webhooks = WebhookStore(db)
    sender = WebhookSender(webhooks, webhook_settings)
    authenticator = Authenticator(KeyStore(db), ttl_s=settings.auth_cache_ttl_s)
    watches = Watches(
        store,
        view,
        write_timeout_s=settings.watch_write_timeout_s,
        links=links,
        places_every_s=settings.queue_snapshot_s,
    )
    feed = ChangeFeed(
        libpq_url(settings.database_url),
        reconnect_base_s=settings.watch_reconnect_base_s,
        reconnect_cap_s=settings.watch_reconnect_cap_s,
    )

    def revoked(key_hash_hex: str) -> None:
        authenticator.revoked(bytes.fromhex(key_hash_hex))
        watches.revoked(key_hash_hex)

    def queue_moved() -> None:
        dispatcher.wake()
        watches.queue_moved()

    def resync() -> None:
        authenticator.forget_all()
        watches.resync()
        queue_moved()

    feed.listeners = FeedListeners(changed=watches.changed, revoked=revoked, queue_moved=queue_moved, resync=resync)
    servicer = GenerationService(
        store,
        dispatcher,
        settings,
        watches=watches,
        view=view,
        webhooks=webhooks,
        webhook_settings=webhook_settings,
        links=links,
        media=media,
    )
    server = GrpcApp(
        "api_server",
        [Service(SERVICE_NAME, lambda s: generation_pb2_grpc.add_GenerationServiceServicer_to_server(servicer, s))],
        host=settings.listen_host,
        port=settings.api_server_port,
        interceptors=[AuthInterceptor(authenticator, signed=SIGNED_METHODS)],
    )
    metrics = (
        MetricsEndpoint(settings.listen_host, settings.api_server_metrics_port, collectors=[queue_gauges(settings)])
        if serve_metrics
        else None
    )
    return ApiServer(
        settings,
        webhook_settings,
        db,
        store,
        authenticator,
        dispatcher,
        sender,
        feed,
        watches,
        server,
        workers,
        media,
        DatabaseGauges(db, backlog=True),
        metrics,
    )


def queue_gauges(settings: Settings) -> QueueCollector:
    """The queue's gauges, read from the database by the process that serves /metrics."""
    return QueueCollector(
        functools.partial(queue_metrics.read, settings.database_url), max_age_s=settings.queue_metrics_max_age_s
    )


async def run(settings: Settings, *, serve_metrics: bool = True) -> int:
    """The process's main loop (leo_mesh.grpc_server.serve); the exit code."""
    tracing.configure(OTEL_SERVICE_NAME)
    try:
        return await serve(bootstrap(settings, serve_metrics=serve_metrics))
    finally:
        tracing.shutdown()


def run_worker(index: int) -> int:
    """One of API_SERVER_WORKERS processes (leo_mesh.workers)."""
    settings = Settings()
    logs.configure("api_server", settings.log_level, worker=index)
    return asyncio.run(run(settings, serve_metrics=False))
