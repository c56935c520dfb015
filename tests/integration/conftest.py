"""Integration tests: stores and in-process servers on the session's real PostgreSQL."""

from __future__ import annotations

import pytest

from leo_mesh.db.pool import Database
from tests.mesh_fixtures import new_migrated_database


@pytest.fixture
def database_url(postgres) -> str:
    """A new database at the head revision, for one test."""
    return new_migrated_database(postgres)


@pytest.fixture
async def db(database_url):
    async with Database(database_url, name="test", max_size=5) as database:
        yield database
