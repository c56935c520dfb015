"""An S3-compatible server for tests: moto's standalone server, on 127.0.0.1."""

from __future__ import annotations

import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.ports import free_port
from devstack.processes import ManagedProcess

ACCESS_KEY_ID, SECRET_ACCESS_KEY = "test-access-key", "test-secret-key"


def start_s3_server(log_dir: Path) -> tuple[ManagedProcess, str]:
    """moto_server on a free port; returns it and its endpoint URL once it answers."""
    port = free_port()
    server = ManagedProcess(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={},
        log_path=log_dir / "moto.log",
    ).start()
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                return server, endpoint
        except OSError:
            if time.monotonic() > deadline or not server.running():
                server.stop()
                raise RuntimeError(f"moto did not start:\n{server.log_text()[-2000:]}") from None
            time.sleep(0.1)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="leo-moto-") as log_dir:
        server, endpoint = start_s3_server(Path(log_dir))
        try:
            yield endpoint
        finally:
            server.stop()
