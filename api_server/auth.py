"""API-key authentication of GenerationService calls.

Runs before the servicer: a call without a live key never reads or writes
anything. The caller's owner is then available to the servicer through
`current_owner()`.
"""

from __future__ import annotations

import contextvars

import grpc

from api_server.keys import KeyStore
from leo_mesh.status import RpcError

PROTECTED_PREFIX = "/leo.generation.v1.GenerationService/"

_owner: contextvars.ContextVar[str] = contextvars.ContextVar("owner")


def current_owner() -> str:
    return _owner.get()


def bearer_key(metadata) -> str | None:
    """The key of an `authorization: Bearer <key>` header, if well formed."""
    for name, value in metadata or ():
        if name == "authorization":
            scheme, _, key = value.partition(" ")
            if scheme.lower() == "bearer" and key.strip():
                return key.strip()
            return None
    return None


def unauthenticated() -> RpcError:
    return RpcError(grpc.StatusCode.UNAUTHENTICATED, "a valid API key is required: Authorization: Bearer <key>")


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(PROTECTED_PREFIX):
            return handler
        key = bearer_key(handler_call_details.invocation_metadata)
        keys = self._keys

        async def authenticate() -> None:
            owner = await keys.owner_of(key) if key else None
            if owner is None:
                raise unauthenticated()
            _owner.set(owner)

        if handler.unary_unary:
            behavior = handler.unary_unary

            async def unary(request, context):
                await authenticate()
                return await behavior(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
            )
        behavior = handler.unary_stream

        async def stream(request, context):
            await authenticate()
            async for message in behavior(request, context):
                yield message

        return grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
