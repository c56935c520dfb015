"""The generic server bootstrap, in process: free ports, health, bytes that
are not a message, and a background task that dies."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from leo.ai.v1 import ai_pb2, ai_pb2_grpc
from leo.generation.v1 import generation_pb2
from leo_mesh.grpc_server import GrpcApp, serve
from tests.inprocess import channel_to, mock_ai

START = "/leo.ai.v1.AIService/StartGeneration"


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)
    info = error_details_pb2.ErrorInfo()
    assert status is not None and status.details[-1].Unpack(info)
    return info


async def test_a_server_on_port_0_gets_a_port_and_serves_health_and_its_service():
    async with mock_ai("127.0.0.1:9", joins=False, mock_ai_min_delay_s=600, mock_ai_max_delay_s=600) as app:
        assert app.port > 0
        async with channel_to(app) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", "leo.ai.v1.AIService"):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            request = ai_pb2.StartGenerationRequest(generation_id="g", prompt="p", width=64, height=64)
            assert (await ai_pb2_grpc.AIServiceStub(channel).StartGeneration(request, timeout=5)).accepted_new


async def test_reflection_describes_only_what_the_server_serves():
    # This process has loaded the public contract too (generation_pb2).
    assert generation_pb2.DESCRIPTOR.services_by_name["GenerationService"]
    async with mock_ai("127.0.0.1:9", joins=False) as app, channel_to(app) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def reflect(**request: str) -> reflection_pb2.ServerReflectionResponse:
            requests = iter([reflection_pb2.ServerReflectionRequest(**request)])
            [reply] = [r async for r in stub.ServerReflectionInfo(requests)]
            return reply

        listed = (await reflect(list_services="")).list_services_response.service
        assert {s.name for s in listed} == {
            "leo.ai.v1.AIService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        }
        for served in ("leo.ai.v1.AIService", "grpc.health.v1.Health"):
            assert (await reflect(file_containing_symbol=served)).file_descriptor_response.file_descriptor_proto
        other = await reflect(file_containing_symbol="leo.generation.v1.GenerationService")
        assert other.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
        by_name = await reflect(file_by_filename="leo/generation/v1/generation.proto")
        assert by_name.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


async def test_bytes_that_are_not_a_message_are_invalid_argument_not_internal():
    # Field 2 (prompt, a string) holding bytes that are not UTF-8; then a truncated varint.
    for garbage in (b"\x12\x02\xff\xfe", b"\x08\xff"):
        async with mock_ai("127.0.0.1:9", joins=False) as app, channel_to(app) as channel:
            call = channel.unary_unary(START, request_serializer=None, response_deserializer=None)
            try:
                await call(garbage, timeout=5)
            except grpc.aio.AioRpcError as error:
                assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error
                assert error_info(error).reason == "MALFORMED_MESSAGE"
            else:
                raise AssertionError("garbage was accepted")


async def test_a_background_task_that_dies_makes_the_service_not_serving_and_exit_1():
    app = GrpcApp("doomed", [], host="127.0.0.1", port=0)

    class Doomed:
        name = "doomed"
        failed = app.failed

        async def start(self) -> None:
            await app.start()

            async def work() -> None:
                await asyncio.sleep(0.05)
                raise RuntimeError("the loop broke")

            app.background.start("work", work())

        async def drain(self) -> None:
            await app.drain()

        async def stop(self) -> None:
            await app.background.stop(1)

    code = await asyncio.wait_for(serve(Doomed()), timeout=20)
    assert code == 1
    reply = await app.health.Check(health_pb2.HealthCheckRequest(service=""), None)
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_a_service_that_fails_to_start_stops_what_it_opened_and_fails():
    stopped = []

    class HalfStarted:
        name = "half started"
        failed = asyncio.Event()

        async def start(self) -> None:
            raise OSError(98, "Address already in use")

        async def drain(self) -> None:
            raise AssertionError("nothing to drain: it never served")

        async def stop(self) -> None:
            stopped.append(True)

    with pytest.raises(OSError, match="Address already in use"):
        await serve(HalfStarted())
    assert stopped == [True]
