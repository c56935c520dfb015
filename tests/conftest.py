"""Fixtures shared by the test suite."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from devstack import ports
from devstack.postgres import EmbeddedPostgres

# No time limit per example: these machines are shared and noisy, and speed
# is measured by `make bench`, never by a test.
settings.register_profile("leo", deadline=None)
settings.load_profile("leo")


def pytest_configure(config: pytest.Config) -> None:
    """Each pytest-xdist worker starts servers on ports of its own block."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        ports.use_block(int(worker.removeprefix("gw")), int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))


def new_postgres() -> EmbeddedPostgres:
    """A PostgreSQL (not started) with its data outside pytest's temp tree:
    pytest keeps that tree private to root, and postgres runs as another user."""
    return EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="leo-test-pg-")), ports.free_port(), fsync=False)


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """One real PostgreSQL server for the whole session (fsync off)."""
    with new_postgres() as server:
        yield server
    shutil.rmtree(server.data_dir, ignore_errors=True)


def new_database(postgres: EmbeddedPostgres) -> str:
    """postgresql:// URL of a new, empty database (no schema)."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    postgres.create_database(name)
    return postgres.url(name)


@pytest.fixture
def fresh_database_url(postgres: EmbeddedPostgres) -> str:
    return new_database(postgres)


pytest_plugins = ["tests.mesh_fixtures", "tests.s3_server", "tests.browser"]
