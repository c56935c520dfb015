"""python -m api_server: the public GenerationService and its dispatcher."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from leo.ai.v1 import ai_pb2_grpc
from leo.generation.v1 import generation_pb2, generation_pb2_grpc

from api_server.auth import AuthInterceptor
from api_server.dispatcher import Dispatcher
from api_server.keys import KeyStore
from api_server.service import GenerationService
from api_server.settings import Settings
from api_server.watch import ChangeFeed, Watches
from api_server.webhooks import WebhookSender, WebhookSettings
from leo_mesh import logs
from leo_mesh.db.engine import create_engine, libpq_url, sessionmaker
from leo_mesh.db.generations import GenerationStore
from leo_mesh.db.webhooks import WebhookStore
from leo_mesh.grpc_server import serve

SERVICE_NAME = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name


async def main() -> None:
    settings = Settings()
    logs.configure("api_server", settings.log_level)
    engine = create_engine(settings.database_url)
    sessions = sessionmaker(engine)
    store = GenerationStore(sessions)
    channel = grpc.aio.insecure_channel(settings.ai_server_address)
    dispatcher = Dispatcher(store, ai_pb2_grpc.AIServiceStub(channel), settings)
    webhook_settings = WebhookSettings()
    webhooks = WebhookStore(sessions)
    sender = WebhookSender(webhooks, webhook_settings)
    feed = ChangeFeed(
        libpq_url(settings.database_url),
        reconnect_base_s=settings.watch_reconnect_base_s,
        reconnect_cap_s=settings.watch_reconnect_cap_s,
    )
    tasks: list[asyncio.Task] = []
    feed_task: asyncio.Task | None = None

    async def started() -> None:
        nonlocal feed_task
        tasks.append(asyncio.create_task(dispatcher.run(), name="dispatcher"))
        tasks.append(asyncio.create_task(sender.run(), name="webhook sender"))
        feed_task = asyncio.create_task(feed.run(), name="change feed")

    async def drain_watches() -> None:
        watches.drain()

    async def stopping() -> None:
        # The server has stopped: no watcher is left to tell.
        feed_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feed_task
        # Let the current round record its results; if it overruns, a row
        # claimed but not recorded becomes claimable again after its lease.
        dispatcher.stop()
        sender.stop()
        grace = max(settings.dispatch_rpc_timeout_s, webhook_settings.timeout_s) + 4
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, timeout=grace)
        await channel.close()
        await engine.dispose()

    watches = Watches(
        store,
        feed,
        write_timeout_s=settings.watch_write_timeout_s,
        max_reads=settings.watch_max_concurrent_reads,
    )
    service = GenerationService(
        store, dispatcher, settings, watches=watches, webhooks=webhooks, webhook_settings=webhook_settings
    )
    await serve(
        name="api_server",
        host=settings.listen_host,
        port=settings.api_server_port,
        services=[(SERVICE_NAME, lambda server: generation_pb2_grpc.add_GenerationServiceServicer_to_server(service, server))],
        on_started=started,
        on_draining=drain_watches,
        on_stopping=stopping,
        interceptors=[AuthInterceptor(KeyStore(sessions))],
    )


if __name__ == "__main__":
    asyncio.run(main())
