"""Starting, watching and stopping the mesh's processes (make run and tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


class Exited(Exception):
    """The process being waited for ended."""


def wait_serving(
    address: str, service: str = "", timeout_s: float = 20.0, *, alive: Callable[[], bool] | None = None
) -> None:
    """Block until the gRPC health service at `address` reports SERVING;
    raises Exited at once when `alive` (the server's process) says it ended."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as channel:
        # Any: the published stubs of grpc_health leave HealthStub's methods out.
        stub: Any = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if alive is not None and not alive():
                raise Exited(address)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{address} not SERVING after {timeout_s} s")
            time.sleep(0.05)


class ManagedProcess:
    """A child process with its output in a log file.

    It runs in its own process group so stop()/kill() take its children too.
    """

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._log_start = 0  # where the current run's lines begin

    @classmethod
    def python_module(cls, name: str, module: str, *, env: dict[str, str], log_path: Path) -> ManagedProcess:
        return cls(name, [sys.executable, "-m", module], env=env, log_path=log_path)

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._log_start = log.tell()
            self.proc = subprocess.Popen(
                self.argv,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.running():
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        """SIGTERM, without waiting: the process drains and exits."""
        self._signal(signal.SIGTERM)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc is None:
            return None
        self.terminate()
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def pause(self) -> None:
        """SIGSTOP: the process stops answering and sending, as a hung one would."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after pause()."""
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the whole group, as a crash would."""
        if self.proc is None:
            return
        self._signal(signal.SIGKILL)
        self.proc.wait(10)

    def log_text(self, *, this_run: bool = False) -> str:
        """The log (`this_run`: since the last start())."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start if this_run else 0)
            return log.read().decode(errors="replace")

    def log_records(self, *, this_run: bool = False) -> list[dict]:
        """The structured (JSON) lines of the log (`this_run`: since the last start())."""
        records = []
        for line in self.log_text(this_run=this_run).splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return records
