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
from tests.mesh_fixtures import database_of

# No time limit per example: these machines are shared and noisy, and speed
# is measured by `make bench`, never by a test.
settings.register_profile("leo", deadline=None)
settings.load_profile("leo")


def pytest_configure(config: pytest.Config) -> None:
    """Each pytest-xdist worker starts servers on ports of its own block."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        ports.use_block(int(worker.removeprefix("gw")), int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))


# Shared memory, where the machine has it: the suite makes and drops
# hundreds of databases of a few megabytes (thousands of files each), which
# on a busy disk took ten times as long as in memory.
IN_MEMORY = Path("/dev/shm")


def new_postgres() -> EmbeddedPostgres:
    """A PostgreSQL (not started, fsync off) with its data in memory if the
    machine has a shared-memory file system, and outside pytest's temp tree:
    pytest keeps that tree private to root, and postgres runs as another user."""
    base = IN_MEMORY if IN_MEMORY.is_dir() and os.access(IN_MEMORY, os.W_OK | os.X_OK) else None
    return EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="leo-test-pg-", dir=base)), ports.free_port(), fsync=False)


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """One real PostgreSQL server for the whole session (fsync off). Its data
    is thrown away at the end: it is killed, not shut down cleanly (which
    writes every changed page first)."""
    server = new_postgres()
    server.start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.data_dir, ignore_errors=True)


def new_database(postgres: EmbeddedPostgres) -> str:
    """postgresql:// URL of a new, empty database (no schema)."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    postgres.create_database(name)
    return postgres.url(name)


@pytest.fixture
def fresh_database_url(postgres: EmbeddedPostgres) -> Iterator[str]:
    """A new, empty database for one test, dropped after it."""
    url = new_database(postgres)
    yield url
    postgres.drop_database(database_of(url))


pytest_plugins = ["tests.mesh_fixtures", "tests.s3_server", "tests.browser"]
