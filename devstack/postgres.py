"""A real PostgreSQL server for tests and local runs, from the `pgserver` wheel.

Only the binaries of `pgserver` are used: its own server class listens on a
unix socket, while the services here need TCP on 127.0.0.1.

Postgres refuses to run as root. Under root, initdb and postgres run as the
unprivileged system user of `machine` (created if missing, race-free),
which owns the data directory.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

# Importing the package builds runtime paths for pgserver's own server class,
# which warns when XDG_RUNTIME_DIR is unset; neither matters here.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pgserver._commands import POSTGRES_BIN_PATH

from devstack import machine

SUPERUSER = "postgres"
LOG_FILE_NAME = "postgres.log"
DROP_PRIVILEGES = Path(__file__).with_name("drop_privileges.py")


class EmbeddedPostgres:
    """One PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port` only.

    `fsync=False` trades crash safety of the *machine* for speed; it is meant
    for tests. Committed data still survives `kill()` of the server, because
    the WAL has reached the OS before a commit returns.
    """

    def __init__(self, data_dir: Path, port: int, *, fsync: bool = True, max_connections: int = 300) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.fsync = fsync
        self.max_connections = max_connections
        self.log_path = self.data_dir / LOG_FILE_NAME
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Initialise the cluster if needed, start it and wait until it accepts connections."""
        if self.is_running():
            raise RuntimeError(f"postgres on port {self.port} is already running")
        self._prepare_data_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                _as_system_user([str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data_dir), *self._settings()]),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                # Its own process group: Ctrl-C in a terminal does not reach
                # it, and kill() can take down every backend at once.
                start_new_session=True,
            )
        self._wait_until_ready(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT, as `pg_ctl stop -m fast` sends); SIGKILL if it does not finish in time."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_process_group()
        # The postmaster exits only after all of its backends have.
        self._process = None

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend, like a crash. start() recovers."""
        if self._process is not None:
            self._kill_process_group()

    def create_database(self, name: str, *, template: str | None = None) -> None:
        """A new database, empty or a copy of `template` (which nobody may be connected to).

        A copy is made file by file (STRATEGY FILE_COPY), not through the WAL
        (PostgreSQL's default since 15): for a template of a few megabytes,
        as the tests copy hundreds of times, it takes half as long."""
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {} STRATEGY FILE_COPY").format(sql.Identifier(template))
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(statement)

    def drop_database(self, name: str) -> None:
        """Drop a database, ending whatever sessions it still has."""
        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(statement)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _settings(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",
            "max_connections": str(self.max_connections),
            "fsync": "on" if self.fsync else "off",
            "timezone": "UTC",
            # Parallel queries' shared memory as files in the data directory,
            # not segments in /dev/shm that a killed server would leave behind.
            "dynamic_shared_memory_type": "mmap",
            "log_timezone": "UTC",
        }
        return [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            user = machine.ensure_user()
            if self.data_dir.stat().st_uid != user.pw_uid:
                # New, or made under another uid (a user removed and made again).
                _chown_tree(self.data_dir, user.pw_uid, user.pw_gid)
            machine.ensure_traversable(self.data_dir)
        self.data_dir.chmod(0o700)

    def _initdb(self) -> None:
        command = [
            str(POSTGRES_BIN_PATH / "initdb"),
            "-D", str(self.data_dir),
            "--username", SUPERUSER,
            "--auth", "trust",
            "--encoding", "UTF8",
            "--locale", "C",
        ]  # fmt: skip
        if not self.fsync:
            command.append("--no-sync")
        result = subprocess.run(_as_system_user(command), cwd=self.data_dir, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed in {self.data_dir}:\n{result.stdout}{result.stderr}")

    def _wait_until_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited with code {self._process.returncode}:\n{self._log_tail()}")
            if self._postmaster_ready():
                return
            if time.monotonic() > deadline:
                self._kill_process_group()
                raise TimeoutError(f"postgres did not accept connections in {timeout} s:\n{self._log_tail()}")
            time.sleep(0.05)

    def _postmaster_ready(self) -> bool:
        """Whether postmaster.pid names our process with status "ready".

        Asked of the pid file rather than the port: another server on the
        same port would answer a connection attempt.
        """
        assert self._process is not None
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(self._process.pid) and lines[7].strip() == "ready"

    def _kill_process_group(self) -> None:
        assert self._process is not None
        group = self._process.pid
        try:
            # The group id is the postmaster's pid, reserved until it is reaped.
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._process.wait()
        self._process = None
        # Backends may outlive the postmaster by a moment; the data
        # directory is only free (to remove, or to start on) once they are gone.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.01)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories + files:
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)


def _as_system_user(command: list[str]) -> list[str]:
    """`command` as the system user when we are root (unchanged otherwise).

    The switch happens in `drop_privileges.py`, which then execs the command;
    see there why not in `subprocess` itself.
    """
    if os.geteuid() != 0:
        return command
    user = machine.ensure_user()
    return [sys.executable, "-I", str(DROP_PRIVILEGES), str(user.pw_uid), str(user.pw_gid), *command]


def main() -> None:
    parser = argparse.ArgumentParser(description="Run an embedded PostgreSQL until interrupted.")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with EmbeddedPostgres(args.data_dir, args.port) as postgres:
        print(postgres.url(), flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
