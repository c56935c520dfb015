"""Fixtures shared by the test suite."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import ports
from devstack.postgres import EmbeddedPostgres
from tests.mesh_fixtures import EDGE_GROUP


def pytest_configure(config: pytest.Config) -> None:
    """Each pytest-xdist worker starts servers on ports of its own block."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        ports.use_block(int(worker.removeprefix("gw")), int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """For pytest-xdist's loadgroup distribution: an end-to-end module runs
    whole on one worker, so its module-scoped mesh starts once, and every
    test of the shared edge mesh runs on one worker, so it starts once.
    Other tests go to whichever worker is free."""
    for item in items:
        if "edge_mesh" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group(EDGE_GROUP))
        elif item.path.parent.name == "e2e" and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


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


pytest_plugins = ["tests.mesh_fixtures", "tests.s3_server"]
