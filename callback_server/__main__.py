"""python -m callback_server: receives the AI backend's results."""

from __future__ import annotations

import asyncio

from leo.callback.v1 import callback_pb2, callback_pb2_grpc

from callback_server.service import CallbackService
from callback_server.settings import Settings
from leo_mesh import logs
from leo_mesh.db.engine import create_engine, sessionmaker
from leo_mesh.db.generations import GenerationStore
from leo_mesh.grpc_server import serve

SERVICE_NAME = callback_pb2.DESCRIPTOR.services_by_name["CallbackService"].full_name


async def main() -> None:
    settings = Settings()
    logs.configure("callback_server", settings.log_level)
    engine = create_engine(settings.database_url)
    service = CallbackService(GenerationStore(sessionmaker(engine)))

    async def stopping() -> None:
        await engine.dispose()

    await serve(
        name="callback_server",
        host=settings.listen_host,
        port=settings.callback_server_port,
        services=[(SERVICE_NAME, lambda server: callback_pb2_grpc.add_CallbackServiceServicer_to_server(service, server))],
        on_stopping=stopping,
    )


if __name__ == "__main__":
    asyncio.run(main())
