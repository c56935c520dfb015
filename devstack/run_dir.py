"""What `make run` keeps between runs in its run directory (.run): the
embedded PostgreSQL's data, the logs, the generated files, the key that
signs links to them, and the lock that says a `make run` is using it.

The lock is an flock on `make-run.pid`, held for the life of the process:
the kernel releases it when the process ends, however it ends, so a lock
file left behind never blocks the next run, and a pid that now belongs to
another process is never taken for a running `make run`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


class AlreadyRunning(Exception):
    def __init__(self, holder: str) -> None:
        super().__init__(f"already running ({holder})")


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path.resolve()

    @property
    def postgres(self) -> Path:
        return self.path / "postgres"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def media(self) -> Path:
        return self.path / "media"

    @property
    def signing_key_path(self) -> Path:
        return self.path / "url-signing-key"

    @contextlib.contextmanager
    def claim(self, description: str) -> Iterator[None]:
        """Hold the run directory while the block runs; raises AlreadyRunning
        (with the holder's pid and `description`) when another process does."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / "make-run.pid", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
                raise AlreadyRunning(holder or "it has not said where yet") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, {description}\n".encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # releases the lock

    def signing_key(self) -> str:
        """The key that signs links to generated files, made on the first run
        and kept, so links handed out before a restart work until they expire."""
        try:
            return self.signing_key_path.read_text().strip()
        except FileNotFoundError:
            pass
        key = secrets.token_urlsafe(32)
        partial = self.signing_key_path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(key + "\n")
        partial.replace(self.signing_key_path)
        return key
