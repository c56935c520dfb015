"""GenerationService: the public API. Every call is authenticated first
(api_server.auth) and sees only its caller's generations. Each method
parses, calls the store, converts; errors are domain errors (leo_mesh.errors)."""

from __future__ import annotations

import dataclasses

import grpc

from api_server import paging, webhook_urls
from api_server.auth import current_caller
from api_server.dispatcher import Dispatcher
from api_server.settings import Settings, WebhookSettings
from api_server.validation import IDEMPOTENCY_HEADER, page_size, parse_generation_id, status_filter, validate_create
from api_server.watch import Watches
from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from leo_mesh.convert import to_proto
from leo_mesh.db.generations import GenerationStore
from leo_mesh.db.webhooks import WebhookStore
from leo_mesh.errors import GenerationNotFound, WebhookSecretRequired, invalid
from leo_mesh.telemetry import tracing


def _header(context: grpc.aio.ServicerContext, name: str) -> str | None:
    value = next((value for key, value in context.invocation_metadata() or () if key == name), None)
    return value if isinstance(value, str) or value is None else value.decode("ascii", "replace")


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
        """A webhook URL must be one the sender can use, public http(s), and signable."""
        try:
            await webhook_urls.check(url, allow_private=self._webhook_settings.allow_private_urls)
        except webhook_urls.UrlRefused as refused:
            raise invalid("webhook_url", str(refused)) from None
        if not await self._webhooks.has_secret(owner):
            raise WebhookSecretRequired()

    async def CreateGeneration(self, request, context):
        owner = current_caller().owner
        new = validate_create(request, owner=owner, idempotency_key=_header(context, IDEMPOTENCY_HEADER))
        if new.webhook_url:
            await self._check_webhook(new.webhook_url, owner)
        trace_parent = tracing.traceparent()
        if trace_parent is not None:  # what the generation's dispatches and webhooks continue
            new = dataclasses.replace(new, trace_parent=trace_parent)
        row, created = await self._store.create(new, max_pending=self._settings.max_pending_per_owner)
        tracing.about_generation(str(row.generation_id))
        if created:
            self._dispatcher.wake()
        return generation_pb2.CreateGenerationResponse(generation=to_proto(row))

    async def GetGeneration(self, request, context):
        generation_id = parse_generation_id(request.generation_id)
        tracing.about_generation(str(generation_id))
        row = await self._store.get(generation_id, current_caller().owner)
        if row is None:
            raise GenerationNotFound(generation_id)
        return generation_pb2.GetGenerationResponse(generation=to_proto(row))

    async def ListGenerations(self, request, context):
        size = page_size(request.page_size)
        status = status_filter(request.status)
        after = paging.decode(request.page_token, status)
        rows = await self._store.page(current_caller().owner, limit=size + 1, after=after, status=status)
        page, more = rows[:size], len(rows) > size
        return generation_pb2.ListGenerationsResponse(
            generations=[to_proto(row) for row in page],
            next_page_token=paging.encode(page[-1], status) if more else "",
        )

    async def CancelGeneration(self, request, context):
        generation_id = parse_generation_id(request.generation_id)
        tracing.about_generation(str(generation_id))
        row = await self._store.cancel(generation_id, current_caller().owner)
        return generation_pb2.CancelGenerationResponse(generation=to_proto(row))

    async def RotateWebhookSecret(self, request, context):
        secret = await self._webhooks.rotate_secret(current_caller().owner)
        return generation_pb2.RotateWebhookSecretResponse(secret=secret)

    async def WatchGeneration(self, request, context):
        generation_id = parse_generation_id(request.generation_id)
        tracing.about_generation(str(generation_id))
        caller = current_caller()
        async for message in self._watches.follow(generation_id, caller.owner, caller.key_hash, context):
            yield message
