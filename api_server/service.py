"""GenerationService: the public API. Every call is authenticated first
(api_server.auth) and sees only its owner's generations."""

from __future__ import annotations

import grpc
from leo.generation.v1 import generation_pb2, generation_pb2_grpc

from api_server import paging
from api_server.auth import current_owner
from api_server.dispatcher import Dispatcher
from api_server.settings import Settings
from api_server.validation import (
    IDEMPOTENCY_HEADER,
    page_size,
    parse_generation_id,
    status_filter,
    validate_create,
)
from api_server.watch import Watches
from api_server.webhooks import WebhookSettings, check_url
from leo_mesh.convert import to_proto
from leo_mesh.db.generations import (
    CancelOutcome,
    GenerationStore,
    IdempotencyConflict,
    TooManyPending,
)
from leo_mesh.db.webhooks import WebhookStore
from leo_mesh.status import FieldViolation, RpcError, invalid_argument, not_found


def _header(context: grpc.aio.ServicerContext, name: str) -> str | None:
    return next((value for key, value in context.invocation_metadata() or () if key == name), None)


class GenerationService(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(
        self,
        store: GenerationStore,
        dispatcher: Dispatcher,
        settings: Settings,
        *,
        watches: Watches,
        webhooks: WebhookStore,
        webhook_settings: WebhookSettings,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._settings = settings
        self._watches = watches
        self._webhooks = webhooks
        self._webhook_settings = webhook_settings

    async def _check_webhook(self, url: str, owner: str) -> None:
        """A webhook URL must be public http(s), and signable."""
        problem = await check_url(url, allow_private=self._webhook_settings.allow_private_urls)
        if problem:
            raise invalid_argument([FieldViolation("webhook_url", problem)])
        if not await self._webhooks.has_secret(owner):
            raise RpcError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "webhooks are signed: make a webhook secret first (POST /v1/webhookSecret:rotate)",
            )

    async def CreateGeneration(self, request, context):
        new = validate_create(request, owner=current_owner(), idempotency_key=_header(context, IDEMPOTENCY_HEADER))
        if new.webhook_url:
            await self._check_webhook(new.webhook_url, new.owner)
        try:
            row, created = await self._store.create(new, max_pending=self._settings.max_pending_per_owner)
        except IdempotencyConflict:
            raise RpcError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"request_id {new.request_id} was already used with other parameters; use a new request_id",
            ) from None
        except TooManyPending as exc:
            raise RpcError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many pending generations: at most {exc.limit} may be PENDING at once; retry when some finish",
            ) from None
        if created:
            self._dispatcher.wake()
        return generation_pb2.CreateGenerationResponse(generation=to_proto(row))

    async def GetGeneration(self, request, context):
        generation_id = parse_generation_id(request.generation_id)
        row = await self._store.get(generation_id, current_owner())
        if row is None:
            raise not_found(f"generation {generation_id}")
        return generation_pb2.GetGenerationResponse(generation=to_proto(row))

    async def ListGenerations(self, request, context):
        size = page_size(request.page_size)
        status = status_filter(request.status)
        after = paging.decode(request.page_token, status)
        rows = await self._store.list(current_owner(), limit=size + 1, after=after, status=status)
        page, more = rows[:size], len(rows) > size
        return generation_pb2.ListGenerationsResponse(
            generations=[to_proto(row) for row in page],
            next_page_token=paging.encode(page[-1], status) if more else "",
        )

    async def CancelGeneration(self, request, context):
        generation_id = parse_generation_id(request.generation_id)
        outcome, row = await self._store.cancel(generation_id, current_owner())
        if outcome is CancelOutcome.NOT_FOUND:
            raise not_found(f"generation {generation_id}")
        if outcome is CancelOutcome.ALREADY_FINAL:
            raise RpcError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"generation {generation_id} is already {row.status.value}; only PENDING generations can be cancelled",
            )
        return generation_pb2.CancelGenerationResponse(generation=to_proto(row))

    async def RotateWebhookSecret(self, request, context):
        secret = await self._webhooks.rotate_secret(current_owner())
        return generation_pb2.RotateWebhookSecretResponse(secret=secret)

    async def WatchGeneration(self, request, context):
        generation_id = parse_generation_id(request.generation_id)
        async for message in self._watches.follow(generation_id, current_owner(), context):
            yield message
