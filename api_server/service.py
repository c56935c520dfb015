"""GenerationService: the public API. Every call is authenticated first
(api_server.auth) and sees only its caller's generations. Each method
parses, calls the store, converts; errors are domain errors (leo_mesh.errors).
GetGenerationAsset and WatchGeneration also take a signed link instead of a
key (the auth interceptor lets such a call through; the link is checked
here); CreateGeneration and GetGeneration hand out the watch's link."""

from __future__ import annotations

import dataclasses

import grpc
from google.api import httpbody_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from api_server import paging, webhook_urls
from api_server.auth import current_caller
from api_server.dispatcher import Dispatcher
from api_server.queue_view import QueueView
from api_server.settings import Settings, WebhookSettings
from api_server.validation import (
    IDEMPOTENCY_HEADER,
    page_size,
    parse_asset_request,
    parse_generation_id,
    parse_watch_request,
    status_filter,
    validate_create,
)
from api_server.watch import Watches
from api_server.watch_events import LAST_EVENT_ID_HEADER
from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from leo_mesh.convert import to_proto
from leo_mesh.db.generations import GenerationStore
from leo_mesh.db.rows import GenerationRow
from leo_mesh.db.webhooks import WebhookStore
from leo_mesh.errors import AssetNotFound, GenerationNotFound, WebhookSecretRequired, invalid
from leo_mesh.media.links import AssetLinks
from leo_mesh.media.store import MediaStore, ObjectMissing
from leo_mesh.rules import Status
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
        view: QueueView,
        webhooks: WebhookStore,
        webhook_settings: WebhookSettings,
        links: AssetLinks,
        media: MediaStore,
    ) -> None:
        self._store = store
        self._links = links
        self._media = media
        self._dispatcher = dispatcher
        self._settings = settings
        self._watches = watches
        self._view = view
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

    def _watch_link(self, generation_id: object) -> dict:
        """A response's watch_url and watch_url_expire_time."""
        expires = self._links.expiry()
        return {
            "watch_url": self._links.watch_url(generation_id, expires),
            "watch_url_expire_time": Timestamp(seconds=expires),
        }

    async def CreateGeneration(self, request, context):
        caller = current_caller()
        new = validate_create(
            request,
            owner=caller.owner,
            idempotency_key=_header(context, IDEMPOTENCY_HEADER),
            max_priority=caller.max_priority,
        )
        if new.webhook_url:
            await self._check_webhook(new.webhook_url, caller.owner)
        # Not asked by the client: what the generation's dispatches and
        # webhooks continue, and its weight and cost in the queue's fair share.
        new = dataclasses.replace(
            new,
            trace_parent=tracing.traceparent(),
            weight=caller.weight,
            cost=self._view.duration(new.model, new.kind),
        )
        row, created = await self._store.create(new, max_pending=self._settings.max_pending_per_owner)
        tracing.about_generation(str(row.generation_id))
        if created:
            self._dispatcher.wake()
        # Its place as the latest picture of the queue has it (none when the
        # picture is older than the generation: Get and Watch show it).
        return generation_pb2.CreateGenerationResponse(
            generation=to_proto(row, self._links, self._view.standing(row)), **self._watch_link(row.generation_id)
        )

    async def _shown(self, row: GenerationRow) -> generation_pb2.Generation:
        """The generation as the API shows it, with where it stands in the queue."""
        standings = await self._view.standings([row])
        return to_proto(row, self._links, standings.get(row.generation_id))

    async def GetGeneration(self, request, context):
        generation_id = parse_generation_id(request.generation_id)
        tracing.about_generation(str(generation_id))
        row = await self._store.get(generation_id, current_caller().owner)
        if row is None:
            raise GenerationNotFound(generation_id)
        return generation_pb2.GetGenerationResponse(
            generation=await self._shown(row), **self._watch_link(row.generation_id)
        )

    async def ListGenerations(self, request, context):
        size = page_size(request.page_size)
        status = status_filter(request.status)
        after = paging.decode(request.page_token, status)
        rows = await self._store.page(current_caller().owner, limit=size + 1, after=after, status=status)
        page, more = rows[:size], len(rows) > size
        standings = await self._view.standings(page)
        return generation_pb2.ListGenerationsResponse(
            generations=[to_proto(row, self._links, standings.get(row.generation_id)) for row in page],
            next_page_token=paging.encode(page[-1], status) if more else "",
        )

    async def CancelGeneration(self, request, context):
        generation_id = parse_generation_id(request.generation_id)
        tracing.about_generation(str(generation_id))
        row, worker = await self._store.cancel(generation_id, current_caller().owner)
        if worker is not None:  # it stops there now, and its slot takes the next generation
            await self._dispatcher.stop_on_worker(worker, [str(generation_id)])
        self._dispatcher.wake()
        return generation_pb2.CancelGenerationResponse(generation=to_proto(row, self._links))

    async def RotateWebhookSecret(self, request, context):
        secret = await self._webhooks.rotate_secret(current_caller().owner)
        return generation_pb2.RotateWebhookSecretResponse(secret=secret)

    async def WatchGeneration(self, request, context):
        generation_id = parse_watch_request(request)
        tracing.about_generation(str(generation_id))
        if request.signature:
            self._links.check_watch(generation_id, request.expires, request.signature)
            owner, key_hash = None, None
        else:
            caller = current_caller()
            owner, key_hash = caller.owner, caller.key_hash
        after = _header(context, LAST_EVENT_ID_HEADER)
        async for message in self._watches.follow(generation_id, owner, key_hash, context, after=after):
            yield message

    async def GetGenerationAsset(self, request, context):
        generation_id, index = parse_asset_request(request)
        if request.signature:
            max_age = self._links.check(generation_id, index, request.expires, request.signature)
            row = next(iter(await self._store.get_any([generation_id])), None)
        else:
            max_age = self._links.ttl_s
            row = await self._store.get(generation_id, current_caller().owner)
        if row is None:
            raise GenerationNotFound(generation_id)
        asset = row.assets[index] if row.status is Status.COMPLETE and index < len(row.assets) else None
        if asset is None or not asset.key:
            raise AssetNotFound(generation_id, index)
        try:
            stored = await self._media.open(asset.key)
        except ObjectMissing:
            raise AssetNotFound(generation_id, index) from None
        # Headers over HTTP; the file never changes under its key.
        await context.send_initial_metadata((("etag", stored.etag), ("cache-control", f"private, max-age={max_age}")))
        content_type = asset.content_type
        async for chunk in stored.chunks():
            yield httpbody_pb2.HttpBody(content_type=content_type, data=chunk)
