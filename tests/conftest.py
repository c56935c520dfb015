"""Fixtures shared by the test suite."""

from __future__ import annotations

import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from leo_mesh.devstack.postgres import EmbeddedPostgres


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def new_postgres() -> EmbeddedPostgres:
    """A PostgreSQL (not started) with its data outside pytest's temp tree:
    pytest keeps that tree private to root, and postgres runs as another user."""
    return EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="leo-test-pg-")), _free_port(), fsync=False)


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """One real PostgreSQL server for the whole session (fsync off)."""
    with new_postgres() as server:
        yield server
    shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture
def fresh_database_url(postgres: EmbeddedPostgres) -> str:
    """postgresql:// URL of a new, empty database (no schema)."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    postgres.create_database(name)
    return postgres.url(name)
pytest_plugins = ["tests.mesh_fixtures"]
