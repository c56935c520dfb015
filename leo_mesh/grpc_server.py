"""What every gRPC server of the mesh has: health, reflection, one log line
per RPC, errors mapped to statuses, and graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterable

import grpc
import psycopg
import sqlalchemy.exc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from leo_mesh.status import RpcError

log = logging.getLogger("leo.rpc")

# Keepalive agreed with Envoy's cluster settings: clients may ping every 10 s.
SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 1 * 1024 * 1024),
]

# The database cannot be reached, or no pooled connection frees up in time.
DB_UNAVAILABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    psycopg.OperationalError,
    OSError,
)


async def _status_of(exc: BaseException, context: grpc.aio.ServicerContext) -> None:
    """Turn what a servicer raised into a gRPC status (aborts the call)."""
    if isinstance(exc, RpcError):
        await context.abort_with_status(exc.to_status())
    if isinstance(exc, NotImplementedError):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not implemented")
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated or isinstance(exc, DB_UNAVAILABLE):
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the database is unavailable; retry later")
    log.exception("unhandled error", exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")


class RpcInterceptor(grpc.aio.ServerInterceptor):
    """Logs one line per RPC and maps exceptions to statuses."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    @staticmethod
    def _log(method: str, context: grpc.aio.ServicerContext, started: float, messages: int | None = None) -> None:
        code = context.code() or (grpc.StatusCode.CANCELLED if context.cancelled() else grpc.StatusCode.OK)
        fields = {
            "method": method,
            "code": code.name,
            "ms": round((time.perf_counter() - started) * 1000, 2),
            "peer": context.peer(),
        }
        if messages is not None:
            fields["messages"] = messages
        if code is not grpc.StatusCode.OK:
            fields["error"] = context.details()
        log.info("rpc", extra=fields)

    def _unary(self, method: str, behavior):
        async def wrapper(request, context):
            started = time.perf_counter()
            try:
                return await behavior(request, context)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as exc:
                await _status_of(exc, context)
            finally:
                self._log(method, context, started)

        return wrapper

    def _stream(self, method: str, behavior):
        async def wrapper(request, context):
            started = time.perf_counter()
            sent = 0
            try:
                async for message in behavior(request, context):
                    sent += 1
                    yield message
            except (asyncio.CancelledError, grpc.aio.AbortError, GeneratorExit):
                raise
            except Exception as exc:
                await _status_of(exc, context)
            finally:
                self._log(method, context, started, sent)

        return wrapper


async def serve(
    *,
    name: str,
    host: str,
    port: int,
    services: Iterable[tuple[str, Callable[[grpc.aio.Server], None]]],
    on_started: Callable[[], Awaitable[None]] | None = None,
    on_draining: Callable[[], Awaitable[None]] | None = None,
    on_stopping: Callable[[], Awaitable[None]] | None = None,
    interceptors: Iterable[grpc.aio.ServerInterceptor] = (),
    grace_s: float = 10.0,
) -> None:
    """Run a server until SIGTERM/SIGINT, then stop gracefully.

    `services` pairs each full service name with the function that adds its
    servicer. Health reports SERVING for each once started and NOT_SERVING
    from the moment shutdown begins, so a proxy stops routing here first.
    `on_draining` runs then, before in-flight calls get their grace period:
    the place to end calls that would otherwise last it out (streams).
    """
    services = list(services)
    # RpcInterceptor is outermost: it logs and maps what the others raise.
    server = grpc.aio.server(interceptors=[RpcInterceptor(), *interceptors], options=SERVER_OPTIONS)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for _, add in services:
        add(server)
    names = [service for service, _ in services]
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise SystemExit(f"{name}: cannot listen on {host}:{port}")
    await server.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    if on_started is not None:
        await on_started()
    for service in ["", *names]:
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    logging.getLogger(name).info("listening", extra={"address": f"{host}:{bound}"})

    await stop.wait()
    logging.getLogger(name).info("shutting down", extra={"grace_s": grace_s})
    await health_servicer.enter_graceful_shutdown()
    if on_draining is not None:
        await on_draining()
    await server.stop(grace_s)
    if on_stopping is not None:
        await on_stopping()
    logging.getLogger(name).info("stopped")
