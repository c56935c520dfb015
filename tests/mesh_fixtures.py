"""Fixtures that start the real mesh (our three services, Envoy) on free ports."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator

import pytest

from devstack.mesh import Mesh, Ports
from leo_mesh.db import migrate
from tests.make_run import MakeRun, free_ports

_templates: dict[int, str] = {}
# Signed links last a day, so they change only every 2.4 h (a tenth of it):
# two reads of a generation in a test show the same links.
LONG_LINKS = {"MEDIA_URL_TTL_S": "86400"}
# A mock AI told to stop leaves at once instead of finishing its jobs (as the
# in-process harness's does): a mesh stopped with jobs running, or with its
# callback server gone, would otherwise wait out ManagedProcess.stop's 15 s.
# A test of the drain sets MOCK_AI_DRAIN_TIMEOUT_S itself.
NO_DRAIN = {"MOCK_AI_DRAIN_TIMEOUT_S": "0"}
_template_lock = threading.Lock()


def new_migrated_database(postgres) -> str:
    """A new database at the head revision; returns its URL. The first one
    of a server is migrated and kept as a template; the others are copies
    of it (a copy takes a fraction of what migrating takes)."""
    with _template_lock:
        template = _templates.get(postgres.port)
        if template is None:
            template = f"template_{uuid.uuid4().hex[:12]}"
            postgres.create_database(template)
            migrate.upgrade(postgres.url(template))
            _templates[postgres.port] = template
    name = f"test_{uuid.uuid4().hex[:16]}"
    postgres.create_database(name, template=template)
    return postgres.url(name)


def new_mesh(
    postgres,
    run_dir,
    *,
    env: dict[str, str] | None = None,
    api_replicas: int = 1,
    ai_workers: int = 1,
    with_envoy: bool = True,
):
    """A mesh (not started) on free ports and a new database of `postgres`."""
    return Mesh(
        new_migrated_database(postgres),
        run_dir,
        ports=Ports.free(api_replicas, ai_workers),
        env={**LONG_LINKS, **NO_DRAIN, **(env or {})},
        with_envoy=with_envoy,
    )


def database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


@contextlib.contextmanager
def migrated_database(postgres) -> Iterator[str]:
    """A new database at the head revision, dropped afterwards; its URL."""
    url = new_migrated_database(postgres)
    try:
        yield url
    finally:
        postgres.drop_database(database_of(url))


@pytest.fixture(scope="module")
def make_mesh(postgres, tmp_path_factory):
    """Factory: make_mesh(env=..., api_replicas=1, ai_workers=1, with_envoy=True, start=True).

    Each mesh gets its own database; all are stopped when the module ends.
    """
    meshes: list[Mesh] = []

    def make(
        *,
        env: dict[str, str] | None = None,
        api_replicas: int = 1,
        ai_workers: int = 1,
        with_envoy: bool = True,
        start: bool = True,
    ) -> Mesh:
        mesh = new_mesh(
            postgres,
            tmp_path_factory.mktemp("mesh"),
            env=env,
            api_replicas=api_replicas,
            ai_workers=ai_workers,
            with_envoy=with_envoy,
        )
        meshes.append(mesh)
        if start:
            mesh.start()
        return mesh

    yield make
    for mesh in meshes:
        mesh.stop()
        postgres.drop_database(database_of(mesh.database_url))


@pytest.fixture(scope="module")
def make_run(postgres, tmp_path_factory):
    """Factory: make_run(env) is `make run` (not started yet) with every port
    free, a run directory and a database of its own, and one api_server
    worker, each through the variable a reader would set; `env` adds or
    overrides some. Whatever still runs is stopped when the module ends."""
    runs: list[MakeRun] = []

    def make(env: dict[str, str] | None = None) -> MakeRun:
        own = {
            **free_ports(),
            "LEO_DEV_RUN_DIR": str(tmp_path_factory.mktemp("run")),
            "DATABASE_URL": new_migrated_database(postgres),
            "API_SERVER_WORKERS": "1",
        }
        run = MakeRun({**own, **(env or {})})
        runs.append(run)
        return run

    yield make
    for run in runs:
        if run.running():
            run.stop()
