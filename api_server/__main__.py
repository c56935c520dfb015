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
from leo_mesh import logs
from leo_mesh.db.engine import create_engine, sessionmaker
from leo_mesh.db.generations import GenerationStore
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
    tasks: list[asyncio.Task] = []

    async def started() -> None:
        tasks.append(asyncio.create_task(dispatcher.run(), name="dispatcher"))

    async def stopping() -> None:
        # Let the current round record its results; if it overruns, a row
        # claimed but not recorded becomes claimable again after its lease.
        dispatcher.stop()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, timeout=settings.dispatch_rpc_timeout_s + 2)
        await channel.close()
        await engine.dispose()

    service = GenerationService(store, dispatcher, settings)
    await serve(
        name="api_server",
        host=settings.listen_host,
        port=settings.api_server_port,
        services=[(SERVICE_NAME, lambda server: generation_pb2_grpc.add_GenerationServiceServicer_to_server(service, server))],
        on_started=started,
        on_stopping=stopping,
        interceptors=[AuthInterceptor(KeyStore(sessions))],
    )


if __name__ == "__main__":
    asyncio.run(main())
