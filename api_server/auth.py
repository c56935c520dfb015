"""API-key authentication of GenerationService calls.

Runs before the servicer: a call without a live key never reads or writes
anything. The caller (owner and key hash) is then available to the servicer
through `current_caller()`. Lookups are cached for a short TTL; a revoked
key is evicted at once on every replica (KeyStore.revoke's NOTIFY reaches
`Authenticator.revoked` through the change feed).
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from leo_mesh.db.keys import Grant, KeyStore, key_hash
from leo_mesh.errors import ApiKeyInvalid
from leo_mesh.scheduling import Priority

PROTECTED_PREFIX = "/leo.generation.v1.GenerationService/"
CACHE_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Caller:
    owner: str
    key_hash: bytes
    # The key's tier: its weight in the fair share, its highest priority.
    weight: int = 1
    max_priority: Priority = Priority.NORMAL


_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller")


def current_caller() -> Caller:
    return _caller.get()


# RFC 6750: the scheme in any case, a space, one b64token; spaces and tabs
# around the token. Nothing else is trimmed: a key with a no-break space
# (or any other character) is not a key. envoy/edge.lua reads the header
# the same way to name the key's rate-limit bucket.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] [ \t]*([A-Za-z0-9._~+/-]+=*)[ \t]*")


def bearer_key(metadata) -> str | None:
    """The key of an `authorization: Bearer <key>` header, if well formed."""
    for name, value in metadata or ():
        if name == "authorization":
            match = _BEARER.fullmatch(value)
            return match[1] if match else None
    return None


def _caller_of(grant: Grant, hashed: bytes) -> Caller:
    return Caller(grant.owner, hashed, grant.weight, grant.max_priority)


class Authenticator:
    """Key hash → what the key grants (owner, tier), remembered for `ttl_s`. Unknown keys are not
    remembered (random keys cannot fill the cache); concurrent lookups of one
    key share one query."""

    def __init__(self, keys: KeyStore, *, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = keys
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[Grant, float]] = OrderedDict()
        self._lookups: dict[bytes, asyncio.Future[Grant | None]] = {}
        # Bumped by every eviction: a lookup that started before one does not
        # cache its (possibly revoked) answer.
        self._epoch = 0

    async def caller(self, key: str) -> Caller | None:
        hashed = key_hash(key)
        cached = self._cache.get(hashed)
        if cached is not None and cached[1] > self._clock():
            return _caller_of(cached[0], hashed)
        lookup = self._lookups.get(hashed)
        if lookup is None:
            lookup = asyncio.ensure_future(self._look_up(hashed))
            self._lookups[hashed] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(hashed, None))
        grant = await asyncio.shield(lookup)
        return _caller_of(grant, hashed) if grant is not None else None

    async def _look_up(self, hashed: bytes) -> Grant | None:
        epoch = self._epoch
        grant = await self._keys.grant_of(hashed)
        if grant is not None and epoch == self._epoch and self._ttl_s > 0:
            self._cache[hashed] = (grant, self._clock() + self._ttl_s)
            self._cache.move_to_end(hashed)
            while len(self._cache) > CACHE_MAX_ENTRIES:
                self._cache.popitem(last=False)
        return grant

    def revoked(self, hashed: bytes) -> None:
        self._epoch += 1
        self._cache.pop(hashed, None)

    def forget_all(self) -> None:
        """Revocations may have been missed (the change feed reconnected)."""
        self._epoch += 1
        self._cache.clear()


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Wraps each protected method's handler (once; the key is read per call
    from the call's metadata).

    `signed`: methods whose request may carry its own proof instead of a key
    (a signed link), and how to tell that it does; such a call goes through
    without a key, no caller is set, and the servicer checks the proof."""

    def __init__(
        self, authenticator: Authenticator, *, signed: Mapping[str, Callable[[Any], bool]] | None = None
    ) -> None:
        self._authenticator = authenticator
        self._signed = dict(signed or {})

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(PROTECTED_PREFIX):
            return handler
        authenticator = self._authenticator

        async def authenticate(context: grpc.aio.ServicerContext) -> None:
            key = bearer_key(context.invocation_metadata())
            caller = await authenticator.caller(key) if key else None
            if caller is None:
                raise ApiKeyInvalid()
            _caller.set(caller)

        carries_proof = self._signed.get(handler_call_details.method, lambda request: False)
        if handler.unary_unary:
            behavior = handler.unary_unary

            async def unary(request, context):
                if not carries_proof(request):
                    await authenticate(context)
                return await behavior(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        stream_behavior = handler.unary_stream

        async def stream(request, context):
            if not carries_proof(request):
                await authenticate(context)
            async for message in stream_behavior(request, context):
                yield message

        return grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
