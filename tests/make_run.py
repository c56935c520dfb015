"""`make run` as a reader runs it: `python -m devstack` (what `make run`
runs once set up) in a child process, configured only by the environment
variables the README documents, and read from what it prints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from devstack.mesh import Ports
from devstack.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
READY = "Press Ctrl-C to stop."
PORT_VARIABLES = [name for name, _ in Ports().by_variable()]


def free_ports() -> dict[str, str]:
    """Every port variable of `make run`, each set to a free port."""
    return {name: str(free_port()) for name in PORT_VARIABLES}


class MakeRun:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115  (open as long as this object)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> MakeRun:
        self.lines = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            env={**os.environ, **self.env},
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        return self

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_running(self, timeout_s: float = 120) -> MakeRun:
        """Until it says it runs; an AssertionError with what it printed if it ends first."""
        assert self.process is not None
        with self._changed:
            self._changed.wait_for(lambda: READY in self.lines or self.process.poll() is not None, timeout_s)
        if READY not in self.lines:
            self.stop()
            raise AssertionError(f"make run did not start (exit {self.process.returncode}):\n{self.output()}")
        return self

    def run_to_end(self, timeout_s: float = 120) -> int:
        """Start it and wait until it ends by itself; returns its exit code."""
        self.start()
        assert self.process is not None
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise

    @property
    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()

    def output(self) -> str:
        return "\n".join([*self.lines, self.stderr])

    def paste_line(self) -> str:
        """The line it prints for readers to paste into another terminal."""
        [line] = [line for line in self.lines if line.startswith("export ")]
        return line

    def stop(self) -> int:
        """Ctrl-C, as in its terminal; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            code = self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait()
        return code

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None
