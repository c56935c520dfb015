"""python -m mock_ai_server: the simulated AI backend."""

from __future__ import annotations

import asyncio

import grpc
from leo.ai.v1 import ai_pb2, ai_pb2_grpc
from leo.callback.v1 import callback_pb2_grpc

from leo_mesh import logs
from leo_mesh.grpc_server import serve
from mock_ai_server.jobs import Jobs
from mock_ai_server.service import AIService
from mock_ai_server.settings import Settings

SERVICE_NAME = ai_pb2.DESCRIPTOR.services_by_name["AIService"].full_name


async def main() -> None:
    settings = Settings()
    logs.configure("mock_ai_server", settings.log_level)
    channel = grpc.aio.insecure_channel(settings.callback_server_address)
    jobs = Jobs(settings, callback_pb2_grpc.CallbackServiceStub(channel))
    service = AIService(jobs, settings)

    async def stopping() -> None:
        await jobs.close()
        await channel.close()

    await serve(
        name="mock_ai_server",
        host=settings.listen_host,
        port=settings.mock_ai_port,
        services=[(SERVICE_NAME, lambda server: ai_pb2_grpc.add_AIServiceServicer_to_server(service, server))],
        on_stopping=stopping,
    )


if __name__ == "__main__":
    asyncio.run(main())
