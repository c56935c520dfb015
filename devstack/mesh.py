"""The whole mesh as child processes: callback_server, a pool of
mock_ai_server workers, api_server (one or more replicas) and optionally
Envoy, on one database.

`make run` uses it on the ports its variables set; tests use it on free ports.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from pydantic_settings import BaseSettings

from api_server.settings import Settings as ApiServerSettings
from callback_server.settings import Settings as CallbackServerSettings
from devstack import envoy
from devstack.ports import free_port
from devstack.processes import Exited, ManagedProcess, wait_serving
from leo_mesh import envoy_config
from leo_mesh.db.keys import KeyStore
from leo_mesh.db.pool import Database
from leo_mesh.media.settings import MediaSettings
from leo_mesh.scheduling import Priority
from mock_ai_server.settings import Settings as MockAiSettings

GENERATION_SERVICE = "leo.generation.v1.GenerationService"


def _default(settings: type[BaseSettings], name: str) -> int:
    """A port setting's default, as the service that reads it has it."""
    return settings.model_fields[name].default


@dataclass
class Ports:
    """Where each process listens. The defaults are the services' own."""

    api: list[int] = field(default_factory=lambda: [_default(ApiServerSettings, "api_server_port")])
    # One per AI worker of the pool.
    ai: list[int] = field(default_factory=lambda: [_default(MockAiSettings, "mock_ai_port")])
    callback: int = _default(CallbackServerSettings, "callback_server_port")
    envoy: int = _default(envoy_config.EnvoySettings, "envoy_listen_port")
    envoy_admin: int = _default(envoy_config.EnvoySettings, "envoy_admin_port")
    # Each process's /metrics (one per api_server replica).
    api_metrics: list[int] = field(default_factory=lambda: [_default(ApiServerSettings, "api_server_metrics_port")])
    ai_metrics: list[int] = field(default_factory=lambda: [_default(MockAiSettings, "mock_ai_metrics_port")])
    callback_metrics: int = _default(CallbackServerSettings, "callback_server_metrics_port")

    @classmethod
    def free(cls, api_replicas: int = 1, ai_workers: int = 1) -> Ports:
        return cls(
            api=[free_port() for _ in range(api_replicas)],
            ai=[free_port() for _ in range(ai_workers)],
            callback=free_port(),
            envoy=free_port(),
            envoy_admin=free_port(),
            api_metrics=[free_port() for _ in range(api_replicas)],
            ai_metrics=[free_port() for _ in range(ai_workers)],
            callback_metrics=free_port(),
        )

    def by_variable(self) -> list[tuple[str, int]]:
        """Each port with the variable that sets it (a second api_server
        replica's as "API_SERVER_PORT of replica 2")."""

        def replicas(name: str, ports: list[int], of: str = "replica") -> list[tuple[str, int]]:
            return [(name if i == 0 else f"{name} of {of} {i + 1}", port) for i, port in enumerate(ports)]

        return [
            ("ENVOY_LISTEN_PORT", self.envoy),
            ("ENVOY_ADMIN_PORT", self.envoy_admin),
            *replicas("API_SERVER_PORT", self.api),
            *replicas("MOCK_AI_PORT", self.ai, "worker"),
            ("CALLBACK_SERVER_PORT", self.callback),
            *replicas("API_SERVER_METRICS_PORT", self.api_metrics),
            *replicas("MOCK_AI_METRICS_PORT", self.ai_metrics, "worker"),
            ("CALLBACK_SERVER_METRICS_PORT", self.callback_metrics),
        ]


class Mesh:
    def __init__(
        self,
        database_url: str,
        run_dir: Path,
        *,
        ports: Ports | None = None,
        env: dict[str, str] | None = None,
        with_envoy: bool = True,
    ) -> None:
        self.database_url = database_url
        self.run_dir = run_dir
        self.ports = ports or Ports()
        self.env = {**self._media_defaults(env or {}), **(env or {})}
        # Where each gRPC process serves health, by process name.
        self._grpc_ports: dict[str, int] = {}
        self.callback_server = self._service(
            "callback_server",
            port=self.ports.callback,
            CALLBACK_SERVER_PORT=str(self.ports.callback),
            CALLBACK_SERVER_METRICS_PORT=str(self.ports.callback_metrics),
        )
        self.mock_ais = [self._worker(i) for i in range(len(self.ports.ai))]
        self.api_servers = [self._api_server(i) for i in range(len(self.ports.api))]
        self.envoy = self._envoy() if with_envoy else None

    def _media_defaults(self, env: dict[str, str]) -> dict[str, str]:
        """Generated files in the run directory, links to Envoy signed with a
        key of this mesh: unless the environment or `env` says otherwise."""
        given = {f"MEDIA_{name.upper()}" for name in MediaSettings().model_fields_set} | set(env)
        defaults = {
            "MEDIA_LOCAL_DIR": str(self.run_dir / "media"),
            "MEDIA_URL_SIGNING_KEY": secrets.token_urlsafe(32),
            "MEDIA_PUBLIC_BASE_URL": self.envoy_url,
        }
        return {name: value for name, value in defaults.items() if name not in given}

    @property
    def media_dir(self) -> Path:
        return Path(self.env.get("MEDIA_LOCAL_DIR") or MediaSettings().local_dir)

    def _service(self, module: str, name: str | None = None, *, port: int, **env: str) -> ManagedProcess:
        name = name or module
        self._grpc_ports[name] = port
        return ManagedProcess.python_module(
            name,
            module,
            env={"DATABASE_URL": self.database_url, **self.env, **env},
            log_path=self.run_dir / f"{name}.log",
        )

    def _worker(self, index: int) -> ManagedProcess:
        """An AI worker: it joins the pool by heartbeating to the callback server."""
        return self._service(
            "mock_ai_server",
            f"mock_ai_server-{index}" if index else "mock_ai_server",
            port=self.ports.ai[index],
            MOCK_AI_PORT=str(self.ports.ai[index]),
            MOCK_AI_METRICS_PORT=str(self.ports.ai_metrics[index]),
            CALLBACK_SERVER_ADDRESS=f"127.0.0.1:{self.ports.callback}",
        )

    @property
    def mock_ai(self) -> ManagedProcess:
        """The pool's first worker."""
        return self.mock_ais[0]

    def _api_server(self, index: int) -> ManagedProcess:
        return self._service(
            "api_server",
            f"api_server-{index}" if index else "api_server",
            port=self.ports.api[index],
            API_SERVER_PORT=str(self.ports.api[index]),
            API_SERVER_METRICS_PORT=str(self.ports.api_metrics[index]),
        )

    def _envoy(self) -> ManagedProcess:
        # ENVOY_* settings in the mesh's env (rate limits) reach Envoy too.
        settings = envoy_config.EnvoySettings.from_env(
            self.env,
            envoy_listen_port=self.ports.envoy,
            envoy_admin_port=self.ports.envoy_admin,
            api_server_port=self.ports.api[0],
        )
        config = envoy_config.write_config(self.run_dir / "envoy.yaml", settings)
        return ManagedProcess("envoy", envoy.command(config), env={}, log_path=self.run_dir / "envoy.log")

    @property
    def api_address(self) -> str:
        return f"127.0.0.1:{self.ports.api[0]}"

    @property
    def envoy_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.envoy}"

    def metrics_url(self, process: ManagedProcess) -> str:
        """Where one of the mesh's services serves /metrics."""
        if process is self.callback_server:
            port = self.ports.callback_metrics
        elif process in self.mock_ais:
            port = self.ports.ai_metrics[self.mock_ais.index(process)]
        else:
            port = self.ports.api_metrics[self.api_servers.index(process)]
        return f"http://127.0.0.1:{port}/metrics"

    def processes(self) -> list[ManagedProcess]:
        """In start order."""
        return [self.callback_server, *self.mock_ais, *self.api_servers, *([self.envoy] if self.envoy else [])]

    def start(self, timeout_s: float = 30.0) -> Mesh:
        """Start the services together, then Envoy once they serve.

        No service needs another to start: their calls to each other wait
        for the peer to be ready (wait_for_ready).
        """
        services = [self.callback_server, *self.mock_ais, *self.api_servers]
        try:
            for process in services:
                process.start()
            for process in services:
                self._wait_ready(process, timeout_s)
            if self.envoy is not None:
                self.start_process(self.envoy, timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def start_process(self, process: ManagedProcess, timeout_s: float = 30.0) -> None:
        """Start one of the mesh's processes and wait until it is ready."""
        process.start()
        self._wait_ready(process, timeout_s)

    def _wait_ready(self, process: ManagedProcess, timeout_s: float) -> None:
        """Until `process` serves; at once an error with its log of this run
        if it ends first (a port taken, a bad setting)."""
        try:
            if process is self.envoy:
                self._wait_envoy_ready(timeout_s)
            else:
                address = f"127.0.0.1:{self._grpc_ports[process.name]}"
                wait_serving(address, timeout_s=timeout_s, alive=process.running)
                if process in self.api_servers:
                    self._wait_workers_listening(process, timeout_s)
        except (TimeoutError, Exited) as exc:
            code = process.proc.poll() if process.proc else None
            what = "did not start" if code is None else f"exited with code {code}"
            raise RuntimeError(f"{process.name} {what}; its log:\n{process.log_text(this_run=True)[-4000:]}") from exc

    def _wait_workers_listening(self, process: ManagedProcess, timeout_s: float) -> None:
        """Until each of an api_server's workers listens: its port answers
        once one does, and the kernel spreads connections only over those."""
        workers = int(self.env.get("API_SERVER_WORKERS", "1"))
        deadline = time.monotonic() + timeout_s
        while (
            len({r.get("worker") for r in process.log_records(this_run=True) if r.get("event") == "listening"})
            < workers
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {workers} workers listening")
            time.sleep(0.05)

    def _wait_envoy_ready(self, timeout_s: float) -> None:
        """Until the admin says ready and the api_server upstream is healthy."""
        admin = f"http://127.0.0.1:{self.ports.envoy_admin}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.envoy is None or not self.envoy.running():
                break
            try:
                with (
                    urllib.request.urlopen(f"{admin}/ready", timeout=1) as ready,
                    urllib.request.urlopen(f"{admin}/clusters", timeout=1) as clusters,
                ):
                    body = clusters.read().decode()
                    if ready.status == 200 and "health_flags::healthy" in body:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("envoy not ready")

    def create_api_key(self, owner: str, key: str | None = None, *, max_priority: Priority = Priority.NORMAL) -> str:
        """Store an API key for `owner` in the mesh's database, allowed up to
        `max_priority`; returns it."""

        async def create() -> str:
            async with Database(self.database_url, name="devstack", max_size=1) as db:
                return await KeyStore(db).create(owner, key, max_priority=max_priority)

        return asyncio.run(create())

    def stop(self) -> None:
        """SIGTERM to every process at once, Envoy first (it stops routing),
        then wait for each to exit."""
        processes = list(reversed(self.processes()))
        for process in processes:
            process.terminate()
        for process in processes:
            process.stop()

    def __enter__(self) -> Mesh:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
