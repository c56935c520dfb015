"""Runs the Node scripts of tests/node with the packages `make setup` pinned there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "tests" / "node"
sys.path.insert(0, str(ROOT / "tools"))
import npm_deps  # noqa: E402  (tools/npm_deps.py, not a package)


def run_node(script: str, *args: str, env: dict[str, str] | None = None, timeout_s: float = 60):
    """`node tests/node/<script> args...`; nothing is installed here (tests download nothing)."""
    node = shutil.which("node")
    assert node, "Node.js 20+ is needed (node on PATH)"
    assert npm_deps.installed(NODE_DIR), "tests/node's packages are missing or stale: run `make setup`"
    return subprocess.run(
        [node, str(NODE_DIR / script), *args],
        cwd=NODE_DIR,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def node_json(script: str, *args: str, **kwargs) -> object:
    """The JSON a script prints last, after checking that it succeeded."""
    run = run_node(script, *args, **kwargs)
    assert run.returncode == 0, run.stderr + run.stdout
    return json.loads(run.stdout.strip().splitlines()[-1])
