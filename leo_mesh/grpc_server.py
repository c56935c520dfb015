"""What every gRPC server of the mesh has: health, reflection, one log line
per RPC, domain errors mapped to statuses, supervised background tasks and
an orderly stop.

`create_server` builds a server (port 0 picks a free one); `running` starts,
serves and drains it in the current event loop; `GrpcApp` adds the
background tasks a service runs beside it; `serve` is the process's main
loop: it runs an app until SIGTERM/SIGINT (exit 0) or until a background
task dies (NOT_SERVING at once, exit 1, so a supervisor restarts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from leo_mesh import logs
from leo_mesh.errors import DomainError, MalformedRequest
from leo_mesh.status import internal_status, to_status
from leo_mesh.telemetry.rpc import RpcRecord

log = logging.getLogger("leo.rpc")

# Keepalive agreed with Envoy's cluster settings: clients may ping every 10 s.
# Metadata up to 64 KiB, one limit (below the hard limit gRPC would refuse
# some calls at random): above the 32 KiB of headers Envoy lets through plus
# what it adds, so a call Envoy forwards is never refused for its headers.
SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 1 * 1024 * 1024),
    ("grpc.max_metadata_size", 64 * 1024),
    ("grpc.absolute_max_metadata_size", 64 * 1024),
    # Calls the core has accepted but the application has not taken yet: by
    # default 1,000 (3,000 at most), and beyond that a burst of new calls (a
    # thousand watches opened at once) is CANCELLED with nothing logged.
    ("grpc.server.max_pending_requests", 20_000),
    ("grpc.server.max_pending_requests_hard_limit", 30_000),
]


@dataclass(frozen=True)
class Service:
    """A servicer to serve: its full name (for health and reflection) and how to add it."""

    name: str
    add: Callable[[grpc.aio.Server], None]


# --- one interceptor: parse failures, error mapping, the log line ---


@dataclass(frozen=True)
class _Unparsable:
    error: str


def _lenient(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """A deserializer that hands bad bytes on as _Unparsable instead of
    raising (which gRPC would answer INTERNAL)."""
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:
            return _Unparsable(str(exc) or type(exc).__name__)

    return parse


async def _abort(exc: Exception, context: grpc.aio.ServicerContext, method: str) -> None:
    """Turn what a servicer raised into its status (aborts the call)."""
    if isinstance(exc, DomainError):
        await context.abort_with_status(to_status(exc))
    log.error("unhandled error", exc_info=exc, extra={"method": method})
    await context.abort_with_status(internal_status())


def _check_parsed(request: Any) -> None:
    if isinstance(request, _Unparsable):
        raise MalformedRequest(f"the request is not a valid message of this method ({request.error})")


class RpcInterceptor(grpc.aio.ServerInterceptor):
    """Outermost interceptor: maps what the others and the servicer raise,
    logs one line per RPC, and records its metrics and span (RpcRecord).

    A method's wrapped handler is built once and kept: the interceptors
    inside this one must do their per-call work in the handlers they return
    (as api_server.auth does), not in intercept_service.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        wrapped = self._handlers.get(method)
        if wrapped is None:
            handler = await continuation(handler_call_details)
            if handler is None:
                return None
            wrapped = self._handlers[method] = self._wrap(method, handler)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler

    @staticmethod
    def _log(
        method: str,
        context: grpc.aio.ServicerContext,
        started: float,
        peer: str,
        record: RpcRecord,
        messages: int | None = None,
        *,
        same_context: bool = True,
    ) -> None:
        code = context.code() or (grpc.StatusCode.CANCELLED if context.cancelled() else grpc.StatusCode.OK)
        elapsed_s = time.perf_counter() - started
        fields: dict[str, Any] = {
            "method": method,
            "code": code.name,
            "ms": round(elapsed_s * 1000, 2),
            "peer": peer,
        }
        if messages is not None:
            fields["messages"] = messages
        details = None
        if code is not grpc.StatusCode.OK:
            details = fields["error"] = context.details()
        logs.info_line(log, "rpc", fields)
        record.finish(code.name, elapsed_s, details, detach=same_context)

    def _unary(self, method: str, behavior):
        async def wrapper(request, context):
            started = time.perf_counter()
            # Read while the call is alive: after a cancelled call is gone,
            # context.peer() dereferences a freed core call (a segfault).
            peer = context.peer()
            record = RpcRecord(method, context)
            try:
                _check_parsed(request)
                return await behavior(request, context)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as exc:
                await _abort(exc, context, method)
            finally:
                self._log(method, context, started, peer, record)

        return wrapper

    def _stream(self, method: str, behavior):
        async def wrapper(request, context):
            started = time.perf_counter()
            peer = context.peer()  # while the call is alive (see _unary)
            record = RpcRecord(method, context)
            sent = 0
            # A stream its server abandoned is closed later by the garbage
            # collector, inside whatever call runs then: its line is written
            # in the stream's own context as of its last message (the span
            # made current in the call's context is not detached there).
            own_context = contextvars.copy_context()
            closed_elsewhere = False
            try:
                _check_parsed(request)
                async for message in behavior(request, context):
                    sent += 1
                    own_context = contextvars.copy_context()
                    yield message
            except GeneratorExit:
                closed_elsewhere = True
                raise
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as exc:
                await _abort(exc, context, method)
            finally:
                if closed_elsewhere:
                    own_context.run(self._log, method, context, started, peer, record, sent, same_context=False)
                else:
                    self._log(method, context, started, peer, record, sent)

        return wrapper


# --- building and running a server ---


def served_descriptors(names: Iterable[str]) -> descriptor_pool.DescriptorPool:
    """A pool of the files that define the named services, and their imports.

    Reflection describes only these: a process also holds the descriptors of
    the services it calls (the api_server, the AI's), which are not its to
    show, least of all through Envoy's public port.
    """
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: FileDescriptor) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        pool.AddSerializedFile(file.serialized_pb)
        added.add(file.name)

    for name in names:
        add(descriptor_pool.Default().FindServiceByName(name).file)
    return pool


def create_server(
    services: Sequence[Service],
    *,
    host: str,
    port: int,
    health_servicer: health.aio.HealthServicer,
    interceptors: Iterable[grpc.aio.ServerInterceptor] = (),
) -> tuple[grpc.aio.Server, int]:
    """A server with the services, health and reflection, bound to host:port
    (0: a free port). Returns it, not started, with the port it got."""
    # RpcInterceptor is outermost: it logs and maps what the others raise.
    server = grpc.aio.server(interceptors=[RpcInterceptor(), *interceptors], options=SERVER_OPTIONS)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in services:
        service.add(server)
    names = [service.name for service in services] + [health.SERVICE_NAME, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server, pool=served_descriptors(names))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    return server, bound


@contextlib.asynccontextmanager
async def running(
    server: grpc.aio.Server,
    health_servicer: health.aio.HealthServicer,
    names: Iterable[str],
    *,
    grace_s: float,
) -> AsyncIterator[None]:
    """Start the server and report SERVING; on exit, NOT_SERVING first (so a
    proxy stops routing here), then stop with a grace period for calls in flight."""
    await server.start()
    try:
        for name in ["", *names]:
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        yield
    finally:
        await health_servicer.enter_graceful_shutdown()
        await server.stop(grace_s)


# --- a service: its server and its background tasks ---


class BackgroundTasks:
    """Tasks a service runs beside its server. One that ends while the
    service is not stopping (it raised, or returned) is logged and sets
    `failed`: the service cannot go on."""

    def __init__(self, name: str) -> None:
        self._log = logging.getLogger(name)
        self._finishing: list[asyncio.Task] = []
        self._listening: list[asyncio.Task] = []
        self._stopping = False
        self.failed = asyncio.Event()

    def start(self, name: str, work: Awaitable[None], *, finishes: bool = False) -> asyncio.Task:
        """Run `work`. `finishes`: it ends by itself once its owner tells it
        to stop, and stop() waits for that; other tasks are cancelled at once."""
        task = asyncio.ensure_future(work)
        task.set_name(name)
        task.add_done_callback(self._ended)
        (self._finishing if finishes else self._listening).append(task)
        return task

    def _ended(self, task: asyncio.Task) -> None:
        if self._stopping:
            return
        error = None if task.cancelled() else task.exception()
        self._log.critical(
            "background task ended; the service cannot go on",
            exc_info=error,
            extra={"task": task.get_name(), "error": str(error) if error else "returned or was cancelled"},
        )
        self.failed.set()

    async def stop(self, timeout_s: float) -> None:
        """Cancel the listening tasks; wait up to timeout_s for the finishing
        ones (told to stop by their owner), then cancel those left."""
        self._stopping = True
        for task in self._listening:
            task.cancel()
        if self._finishing:
            _, late_finishers = await asyncio.wait(self._finishing, timeout=timeout_s)
            for task in late_finishers:
                task.cancel()
        await asyncio.gather(*self._listening, *self._finishing, return_exceptions=True)


class GrpcApp:
    """A gRPC server with health and reflection, and its background tasks."""

    def __init__(
        self,
        name: str,
        services: Sequence[Service],
        *,
        host: str,
        port: int,
        interceptors: Iterable[grpc.aio.ServerInterceptor] = (),
        grace_s: float = 10.0,
    ) -> None:
        self.name = name
        self.health = health.aio.HealthServicer()
        self._names = [service.name for service in services]
        self._server, self.port = create_server(
            services, host=host, port=port, health_servicer=self.health, interceptors=interceptors
        )
        self._host = host
        self._grace_s = grace_s
        self.background = BackgroundTasks(name)
        self._serving: contextlib.AbstractAsyncContextManager[None] | None = None

    @property
    def failed(self) -> asyncio.Event:
        return self.background.failed

    async def start(self) -> None:
        self._serving = running(self._server, self.health, self._names, grace_s=self._grace_s)
        await self._serving.__aenter__()
        logging.getLogger(self.name).info("listening", extra={"address": f"{self._host}:{self.port}"})

    async def drain(self, before_grace: Callable[[], Awaitable[None]] | None = None) -> None:
        """NOT_SERVING at once; `before_grace` ends calls that would last the
        grace period out (streams); then calls in flight get the grace period."""
        logging.getLogger(self.name).info("shutting down", extra={"grace_s": self._grace_s})
        await self.health.enter_graceful_shutdown()
        if before_grace is not None:
            await before_grace()
        if self._serving is not None:
            serving, self._serving = self._serving, None
            await serving.__aexit__(None, None, None)


class GrpcService:
    """What the services' composition roots share: their GrpcApp (an
    attribute `grpc`), its port and failure, and a plain drain."""

    grpc: GrpcApp

    @property
    def port(self) -> int:
        return self.grpc.port

    @property
    def failed(self) -> asyncio.Event:
        return self.grpc.failed

    async def drain(self) -> None:
        await self.grpc.drain()


class App(Protocol):
    """What `serve` runs: a service's composition root."""

    name: str

    @property
    def failed(self) -> asyncio.Event: ...

    async def start(self) -> None: ...

    async def drain(self) -> None: ...

    async def stop(self) -> None: ...


async def serve(app: App) -> int:
    """Run `app` until SIGTERM/SIGINT or until it fails; returns the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
    except BaseException:
        # What it opened before failing (a database pool that keeps trying
        # to connect) would keep the process from ever exiting.
        try:
            await app.stop()
        except Exception:
            logging.getLogger(app.name).exception("stopping after a failed start failed too")
        raise
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(app.failed.wait())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    failed = app.failed.is_set()
    await app.drain()
    await app.stop()
    logging.getLogger(app.name).info("stopped", extra={"exit_code": int(failed)})
    return int(failed)
