"""The services built in the test's own event loop (no subprocess), on free ports."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.rpc import status_pb2

from api_server.app import ApiServer
from api_server.app import bootstrap as api_bootstrap
from api_server.settings import Settings as ApiSettings
from api_server.settings import WebhookSettings
from callback_server.app import CallbackServer
from callback_server.app import bootstrap as callback_bootstrap
from callback_server.settings import Settings as CallbackSettings
from leo.ai.v1 import ai_pb2
from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from leo_mesh.convert import webhook_body
from leo_mesh.db.keys import KeyStore
from leo_mesh.db.rows import GenerationRow
from leo_mesh.errors import DomainError
from leo_mesh.media.links import AssetLinks
from leo_mesh.media.settings import MediaSettings
from leo_mesh.status import status_proto
from mock_ai_server.app import MockAi
from mock_ai_server.app import bootstrap as mock_ai_bootstrap
from mock_ai_server.settings import Settings as MockAiSettings
from tests import rows

SIGNING_KEY = "test-media-signing-key"
FINAL = {generation_pb2.STATUS_COMPLETE, generation_pb2.STATUS_FAILED, generation_pb2.STATUS_CANCELLED}


def _temporary_directory(prefix: str) -> Path:
    """A new directory under the system's temp dir, removed when the test process ends."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def media_settings(local_dir: Path | None = None, **settings) -> MediaSettings:
    """Where in-process services keep generated files (a new directory unless
    given) and the key their links are signed with, the same for all of them."""
    directory = local_dir or _temporary_directory("leo-media-")
    # Links that last a day change every 2.4 h: two reads in a test show the same ones.
    return MediaSettings(local_dir=directory, url_signing_key=SIGNING_KEY, **{"url_ttl_s": 86400, **settings})


LINKS = AssetLinks.from_settings(media_settings(Path(tempfile.gettempdir())))


def signed_webhook_body(row: GenerationRow) -> str:
    """Webhook bodies as the services make them, links signed with SIGNING_KEY."""
    return webhook_body(row, LINKS)


class FakeAi:
    """An AIService stub for api_server-only tests, standing for every AI
    worker the api_server dials: records every StartGenerations call and
    its jobs, and every CancelGenerations. `answer`, if set, is what the
    whole call raises; otherwise each job is taken (running at once, unless
    `running` is False), unless `refuse` holds a domain error for its
    generation, which is then its outcome."""

    def __init__(self) -> None:
        self.calls = 0
        self.requests: list[ai_pb2.StartGenerationRequest] = []
        self.cancelled: list[str] = []
        self.answer: Exception | None = None
        self.refuse: dict[str, DomainError] = {}
        self.running = True

    async def StartGenerations(self, request, **kwargs):
        self.calls += 1
        self.requests.extend(request.generations)
        if self.answer is not None:
            raise self.answer
        return ai_pb2.StartGenerationsResponse(outcomes=[self._outcome(job) for job in request.generations])

    async def CancelGenerations(self, request, **kwargs):
        self.cancelled.extend(request.generation_ids)
        ok = ai_pb2.CancelGenerationOutcome(status=status_pb2.Status(code=0))
        return ai_pb2.CancelGenerationsResponse(outcomes=[ok for _ in request.generation_ids])

    def _outcome(self, job: ai_pb2.StartGenerationRequest) -> ai_pb2.StartGenerationOutcome:
        refused = self.refuse.get(job.generation_id)
        if refused is not None:
            return ai_pb2.StartGenerationOutcome(status=status_proto(refused))
        taken = ai_pb2.StartGenerationResponse(accepted_new=True, running=self.running)
        return ai_pb2.StartGenerationOutcome(status=status_pb2.Status(code=0), response=taken)


@contextlib.asynccontextmanager
async def stopped_after(app) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await app.drain()
        await app.stop()


@contextlib.asynccontextmanager
async def api_server(
    database_url: str,
    *,
    ai=None,
    real_workers: bool = False,
    fake_worker: bool = True,
    background: bool = True,
    webhooks: dict | None = None,
    media: MediaSettings | None = None,
    **settings,
) -> AsyncIterator[ApiServer]:
    """A running api_server (on any free port unless `api_server_port` says
    which); `background=False` leaves the dispatcher and the other loops to
    the test, which drives their rounds itself. Its AI workers are `ai` (a
    stub answering for every worker; a new FakeAi unless given), with one
    worker of ample room registered unless `fake_worker` is False; or, with
    `real_workers`, the workers that registered themselves (mock AIs,
    reached through the channels production uses)."""
    config = ApiSettings(database_url=database_url, **{"api_server_port": 0, "api_server_metrics_port": 0, **settings})
    stub = None if real_workers else ai or FakeAi()
    if stub is not None and fake_worker:
        await asyncio.to_thread(rows.ensure_worker, database_url)
    app = api_bootstrap(
        config,
        webhook_settings=WebhookSettings(**(webhooks or {})),
        media_settings=media or media_settings(),
        ai=None if stub is None else (lambda address: stub),
    )
    await app.start(background=background)
    async with stopped_after(app):
        yield app


@contextlib.asynccontextmanager
async def callback_server(database_url: str, media: MediaSettings | None = None) -> AsyncIterator[CallbackServer]:
    app = callback_bootstrap(
        CallbackSettings(database_url=database_url, callback_server_port=0, callback_server_metrics_port=0),
        media or media_settings(),
    )
    await app.start()
    async with stopped_after(app):
        yield app


@contextlib.asynccontextmanager
async def mock_ai(
    callback_address: str, media: MediaSettings | None = None, *, joins: bool = True, **settings
) -> AsyncIterator[MockAi]:
    """An AI worker, in the pool once its first heartbeat was answered (or
    at once, when `joins` is False: no callback server to join through).
    Stopped at the end, it drains for `mock_ai_drain_timeout_s` (none
    unless the test says: what it runs then is of no interest)."""
    settings.setdefault("mock_ai_drain_timeout_s", 0)
    app = mock_ai_bootstrap(
        MockAiSettings(callback_server_address=callback_address, mock_ai_port=0, mock_ai_metrics_port=0, **settings),
        media or media_settings(),
    )
    await app.start()
    async with stopped_after(app):
        if joins:
            await asyncio.wait_for(app.heartbeats.joined.wait(), timeout=20)
        yield app


def channel_to(app) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")


class Client:
    """The GenerationService of an in-process api_server, with one key."""

    def __init__(self, channel: grpc.aio.Channel, key: str) -> None:
        self.stub = generation_pb2_grpc.GenerationServiceStub(channel)
        self.key = key
        self.metadata = (("authorization", f"Bearer {key}"),)

    async def create(self, **fields) -> generation_pb2.Generation:
        request = generation_pb2.CreateGenerationRequest(**{"prompt": "a lighthouse", **fields})
        return (await self.stub.CreateGeneration(request, metadata=self.metadata, timeout=10)).generation

    async def get(self, generation_id: str) -> generation_pb2.Generation:
        request = generation_pb2.GetGenerationRequest(generation_id=generation_id)
        return (await self.stub.GetGeneration(request, metadata=self.metadata, timeout=10)).generation

    async def list(self, **fields) -> generation_pb2.ListGenerationsResponse:
        request = generation_pb2.ListGenerationsRequest(**fields)
        return await self.stub.ListGenerations(request, metadata=self.metadata, timeout=10)

    async def cancel(self, generation_id: str) -> generation_pb2.Generation:
        request = generation_pb2.CancelGenerationRequest(generation_id=generation_id)
        return (await self.stub.CancelGeneration(request, metadata=self.metadata, timeout=10)).generation

    async def rotate_webhook_secret(self) -> str:
        request = generation_pb2.RotateWebhookSecretRequest()
        return (await self.stub.RotateWebhookSecret(request, metadata=self.metadata, timeout=10)).secret

    async def watch(self, generation_id: str, timeout_s: float = 30) -> list[generation_pb2.Generation]:
        """Every message of one WatchGeneration stream, to its end."""
        request = generation_pb2.WatchGenerationRequest(generation_id=generation_id)
        call = self.stub.WatchGeneration(request, metadata=self.metadata, timeout=timeout_s)
        return [message.generation async for message in call]

    async def wait_final(self, generation_id: str, timeout_s: float = 30) -> generation_pb2.Generation:
        """The generation in its final state: the last message of a watch, which ends there."""
        final = (await self.watch(generation_id, timeout_s))[-1]
        assert final.status in FINAL, final
        return final


async def until(check, what: str, *, timeout_s: float = 20, interval_s: float = 0.05):
    """Poll `check()` (a function, or one returning an awaitable: a blocking
    read put in a thread, as `lambda: asyncio.to_thread(rows.dispatch, url, id)`)
    until it gives something truthy, while the event loop's servers keep running."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        await asyncio.sleep(interval_s)


async def code_of(call) -> grpc.StatusCode:
    """The status code of a call (an awaitable) that must fail."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    raise AssertionError("the call succeeded")


@dataclass
class Flow:
    """callback_server, the mock AI and an api_server in one event loop,
    wired as in the mesh (the AI worker joins the pool by heartbeating, the
    api_server reaches it over its production channel) and sharing one media
    directory: a generation's whole flow in
    process. Clients of new owners come from client()."""

    database_url: str
    media: MediaSettings
    callback: CallbackServer
    ai: MockAi
    api: ApiServer
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.api.port}"

    async def key(self, owner: str | None = None) -> str:
        """A new API key (of a new owner unless given)."""
        return await new_key(self.api, owner or f"owner-{uuid.uuid4().hex[:8]}")

    async def client(self, owner: str | None = None) -> Client:
        """A client of the api_server with a new key (of a new owner unless given)."""
        channel = channel_to(self.api)
        self.channels.append(channel)
        return Client(channel, await self.key(owner))


@contextlib.asynccontextmanager
async def flow(
    database_url: str,
    *,
    ai: dict | None = None,
    webhooks: dict | None = None,
    media: MediaSettings | None = None,
    **api_settings,
) -> AsyncIterator[Flow]:
    """The whole flow in this event loop: `ai` holds the mock AI's settings
    (mock_ai_min_delay_s=...), `webhooks` the WebhookSettings, the rest the
    api_server's. The worker is ample (64 slots, as many running per owner)
    unless they say otherwise: tests of the pool's limits set their own."""
    media = media or media_settings()
    ai = {"mock_ai_slots": 64, **(ai or {})}
    api_settings.setdefault("max_running_per_owner", 64)
    async with (
        callback_server(database_url, media) as callback,
        mock_ai(f"127.0.0.1:{callback.port}", media, **ai) as mock,
        api_server(database_url, real_workers=True, webhooks=webhooks, media=media, **api_settings) as api,
    ):
        running = Flow(database_url, media, callback, mock, api)
        try:
            yield running
        finally:
            for channel in running.channels:
                await channel.close()


async def new_key(app: ApiServer, owner: str = "alice") -> str:
    """A new API key of `owner` in the api_server's database."""
    return await KeyStore(app.db).create(owner)
