"""What the bench measures, started on free ports: one embedded PostgreSQL
(fsync on, as `make run`), the mesh, and the echo servers with and without
the project's Envoy config in front.

Each side of a figure is a Target: where to send load, which processes to
meter, and how to count the calls it served (bench.verify).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
import psycopg

from bench import verify
from bench.echo_server import SERVICE_NAME
from devstack import envoy
from devstack.mesh import Mesh, Ports
from devstack.ports import free_port
from devstack.postgres import EmbeddedPostgres
from devstack.processes import ManagedProcess, wait_serving
from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from leo_mesh import envoy_config
from leo_mesh.db import migrate

ROOT = Path(__file__).resolve().parents[1]
OWNER = "bench"
# A rate limit far above anything two cores can serve.
UNCAPPED_RPS = 1_000_000
# The per-owner PENDING cap, raised so that no figure meets it (and the
# per-owner RUNNING cap, except in the queue's rows).
UNCAPPED_PENDING = 1_000_000_000
# A mock AI worker's most slots: jobs at delay 0 never wait for one.
AMPLE_SLOTS = 1024


# Every Envoy rate-limit bucket, raised out of the way (the settings of
# leo_mesh.envoy_config_config.EnvoySettings, passed as the mesh's environment).
UNCAPPED_RATE_LIMITS = {
    f"ENVOY_RATE_LIMIT_{which}_{kind}": str(UNCAPPED_RPS)
    for which in ("PER_KEY", "GLOBAL")
    for kind in ("RPS", "BURST")
}


def wait_envoy_ready(process: ManagedProcess, admin_port: int, timeout_s: float = 30.0) -> None:
    """Until Envoy's admin says ready and its upstream is healthy."""
    admin = f"http://127.0.0.1:{admin_port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.running():
        try:
            with (
                urllib.request.urlopen(f"{admin}/ready", timeout=1) as ready,
                urllib.request.urlopen(f"{admin}/clusters", timeout=1) as clusters,
            ):
                if ready.status == 200 and "health_flags::healthy" in clusters.read().decode():
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} not ready:\n{process.log_text()[-3000:]}")


class Postgres:
    """The bench's own PostgreSQL cluster in a temporary directory, fsync on."""

    def __init__(self) -> None:
        self.server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="leo-bench-pg-")), free_port(), fsync=True)

    def __enter__(self) -> Postgres:
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()
        shutil.rmtree(self.server.data_dir, ignore_errors=True)

    def postmaster_pid(self) -> int:
        """The parent of every backend."""
        return int((self.server.data_dir / "postmaster.pid").read_text().splitlines()[0])

    def new_database(self, name: str) -> str:
        """A new database at the head revision of the migrations."""
        self.server.create_database(name)
        url = self.server.url(name)
        migrate.upgrade(url)
        return url


class Target:
    """One side of a figure."""

    label: str
    grpc_address: str
    json_url: str | None = None
    database_url: str | None = None
    headers: dict[str, str]
    served: verify.ServedCounts

    def process_roots(self) -> dict[str, int]:
        """The pid of each process to meter (with its descendants), by name."""
        raise NotImplementedError

    def settle(self) -> None:
        """Returns once the work that earlier calls set off is done."""

    def start(self) -> Target:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Target:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class EchoTarget(Target):
    """An echo server, optionally behind the project's Envoy config."""

    def __init__(self, run_dir: Path, *, label: str, log_rpcs: bool = False, with_envoy: bool = False) -> None:
        self.label = label
        port = free_port()
        self.grpc_address = f"127.0.0.1:{port}"
        argv = [sys.executable, "-m", "bench.echo_server", "--port", str(port)]
        name = "echo_server_logged" if log_rpcs else "echo_server"
        self.echo = ManagedProcess(
            name,
            [*argv, "--log-rpcs"] if log_rpcs else argv,
            env={"PYTHONPATH": str(ROOT)},
            log_path=run_dir / f"{name}.log",
        )
        self.envoy: ManagedProcess | None = None
        if with_envoy:
            self._envoy_port, self._admin_port = free_port(), free_port()
            config = envoy_config.write_config(
                run_dir / "envoy-echo.yaml",
                envoy_config.EnvoySettings.from_env(
                    UNCAPPED_RATE_LIMITS,
                    envoy_listen_port=self._envoy_port,
                    envoy_admin_port=self._admin_port,
                    api_server_port=port,
                ),
            )
            self.envoy = ManagedProcess("envoy", envoy.command(config), env={}, log_path=run_dir / "envoy-echo.log")
            self.json_url = f"http://127.0.0.1:{self._envoy_port}"
        # The same header as the mesh gets; the echo does not read it.
        self.headers = {"authorization": "Bearer echo-needs-no-key"}
        self.served = verify.EchoServed(self.grpc_address)

    def start(self) -> EchoTarget:
        try:
            self.echo.start()
            wait_serving(self.grpc_address, SERVICE_NAME)
            if self.envoy is not None:
                self.envoy.start()
                wait_envoy_ready(self.envoy, self._admin_port)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in (self.envoy, self.echo):
            if process is not None:
                process.stop()

    def process_roots(self) -> dict[str, int]:
        processes = [self.echo] + ([self.envoy] if self.envoy is not None else [])
        return {process.name: process.proc.pid for process in processes}


class MeshTarget(Target):
    """The mesh on its own database, with its caps raised for the bench."""

    def __init__(
        self,
        postgres: Postgres,
        run_dir: Path,
        *,
        label: str,
        env: dict[str, str],
        with_envoy: bool = True,
        ai_workers: int = 1,
    ) -> None:
        self.label = label
        self.postgres = postgres
        self.database_url = postgres.new_database(f"bench_{label.replace('-', '_')}")
        self.env = {"MAX_PENDING_PER_OWNER": str(UNCAPPED_PENDING), **UNCAPPED_RATE_LIMITS, **env}
        ports = Ports.free(ai_workers=ai_workers)
        self.mesh = Mesh(self.database_url, run_dir / label, ports=ports, env=self.env, with_envoy=with_envoy)
        if self.mesh.envoy is not None:
            self.json_url = self.mesh.envoy_url
        self.grpc_address = self.mesh.api_address
        self.api_key = self.mesh.create_api_key(OWNER)
        self.headers = {"authorization": f"Bearer {self.api_key}"}
        self.served = verify.LoggedRpcs(self.mesh.api_servers[0].log_path)

    def start(self) -> MeshTarget:
        self.mesh.start()  # stops what it started if it fails
        return self

    def stop(self) -> None:
        self.mesh.stop()

    def process_roots(self) -> dict[str, int]:
        groups = {process.name: process.proc.pid for process in self.mesh.processes()}
        return {**groups, "postgres": self.postgres.postmaster_pid()}

    def settle(self, timeout_s: float = 120.0) -> None:
        """Until no generation is PENDING: its dispatch, the AI and the callback are done."""
        deadline = time.monotonic() + timeout_s
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while conn.execute("SELECT count(*) FROM generations WHERE status = 'PENDING'").fetchone()[0]:
                if time.monotonic() > deadline:
                    raise verify.FigureFailed(f"{self.label}: generations still PENDING after {timeout_s:.0f} s")
                time.sleep(0.2)

    def new_owner(self, owner: str, *, weight: int | None = None, max_priority: str | None = None) -> dict[str, str]:
        """Headers of a new API key of `owner`. A key with a tier (its weight,
        its highest priority: low, normal or high) is made as an operator
        makes it, with the keys CLI."""
        if weight is None and max_priority is None:
            return {"authorization": f"Bearer {self.mesh.create_api_key(owner)}"}
        argv = [sys.executable, "-m", "api_server.keys", "--database-url", self.database_url, "create"]
        argv += ["--owner", owner, "--json"]
        argv += ["--weight", str(weight)] if weight is not None else []
        argv += ["--max-priority", max_priority] if max_priority is not None else []
        made = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        if made.returncode:
            raise RuntimeError(f"keys create for {owner} exited {made.returncode}: {made.stderr.strip()}")
        return {"authorization": f"Bearer {json.loads(made.stdout)['key']}"}


def metadata(headers: dict[str, str]) -> list[tuple[str, str]]:
    return list(headers.items())


def create_one(address: str, headers: dict[str, str]) -> str:
    """Creates a generation through a gRPC API; returns its id."""
    with grpc.insecure_channel(address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        request = generation_pb2.CreateGenerationRequest(prompt="bench: one to read back")
        reply = stub.CreateGeneration(request, metadata=metadata(headers), timeout=10)
    return reply.generation.generation_id


def cancel(address: str, generation_id: str, headers: dict[str, str]) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        request = generation_pb2.CancelGenerationRequest(generation_id=generation_id)
        stub.CancelGeneration(request, metadata=metadata(headers), timeout=30)


def xid_now(database_url: str) -> int:
    """The next transaction id: the difference of two readings is how many
    transactions wrote in between (plus one, for the first reading)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return int(conn.execute("SELECT pg_current_xact_id()::text").fetchone()[0])
