"""The services built in the test's own event loop (no subprocess), on free ports."""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
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

SIGNING_KEY = "test-media-signing-key"


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
    """An AIService stub for api_server-only tests: records every
    StartGenerations call and its jobs. `answer`, if set, is what the whole
    call raises; otherwise each job is accepted, unless `refuse` holds a
    domain error for its generation, which is then its outcome."""

    def __init__(self) -> None:
        self.calls = 0
        self.requests: list[ai_pb2.StartGenerationRequest] = []
        self.answer: Exception | None = None
        self.refuse: dict[str, DomainError] = {}

    async def StartGenerations(self, request, **kwargs):
        self.calls += 1
        self.requests.extend(request.generations)
        if self.answer is not None:
            raise self.answer
        return ai_pb2.StartGenerationsResponse(outcomes=[self._outcome(job) for job in request.generations])

    def _outcome(self, job: ai_pb2.StartGenerationRequest) -> ai_pb2.StartGenerationOutcome:
        refused = self.refuse.get(job.generation_id)
        if refused is not None:
            return ai_pb2.StartGenerationOutcome(status=status_proto(refused))
        return ai_pb2.StartGenerationOutcome(status=status_pb2.Status(code=0), accepted_new=True)


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
    background: bool = True,
    webhooks: dict | None = None,
    media: MediaSettings | None = None,
    **settings,
) -> AsyncIterator[ApiServer]:
    """A running api_server (on any free port unless `api_server_port` says
    which); `background=False` leaves the dispatcher and the other loops to
    the test, which drives their rounds itself."""
    config = ApiSettings(database_url=database_url, **{"api_server_port": 0, "api_server_metrics_port": 0, **settings})
    app = api_bootstrap(
        config,
        webhook_settings=WebhookSettings(**(webhooks or {})),
        media_settings=media or media_settings(),
        ai=ai or FakeAi(),
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
async def mock_ai(callback_address: str, media: MediaSettings | None = None, **settings) -> AsyncIterator[MockAi]:
    app = mock_ai_bootstrap(
        MockAiSettings(callback_server_address=callback_address, mock_ai_port=0, mock_ai_metrics_port=0, **settings),
        media or media_settings(),
    )
    await app.start()
    async with stopped_after(app):
        yield app


def channel_to(app) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")


class Client:
    """The GenerationService of an in-process api_server, with one key."""

    def __init__(self, channel: grpc.aio.Channel, key: str) -> None:
        self.stub = generation_pb2_grpc.GenerationServiceStub(channel)
        self.metadata = (("authorization", f"Bearer {key}"),)

    async def create(self, **fields) -> generation_pb2.Generation:
        request = generation_pb2.CreateGenerationRequest(**{"prompt": "a lighthouse", **fields})
        return (await self.stub.CreateGeneration(request, metadata=self.metadata, timeout=10)).generation


async def new_key(app: ApiServer, owner: str = "alice") -> str:
    """A new API key of `owner` in the api_server's database."""
    return await KeyStore(app.db).create(owner)
