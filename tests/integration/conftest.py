"""Integration tests: stores and in-process servers on the session's real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from leo.callback.v1 import callback_pb2_grpc
from leo_mesh.db.generations import GenerationStore
from leo_mesh.db.pool import Database
from tests.inprocess import callback_server, channel_to, signed_webhook_body
from tests.mesh_fixtures import database_of, new_migrated_database


@pytest.fixture
def database_url(postgres) -> Iterator[str]:
    """A new database at the head revision for one test, dropped after it."""
    url = new_migrated_database(postgres)
    yield url
    postgres.drop_database(database_of(url))


@pytest.fixture
async def db(database_url):
    async with Database(database_url, name="test", max_size=5) as database:
        yield database


@pytest.fixture
def store(db) -> GenerationStore:
    return GenerationStore(db, webhook_body=signed_webhook_body)


@pytest.fixture
async def callbacks(database_url):
    """A CallbackService stub of a callback_server in this event loop."""
    async with callback_server(database_url) as app, channel_to(app) as channel:
        yield callback_pb2_grpc.CallbackServiceStub(channel)
