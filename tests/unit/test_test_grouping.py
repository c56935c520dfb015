"""The suite's own pytest settings keep each module on one worker (what a
module starts once, a mesh or the browser tests' Chromium, serves all its
tests): pyproject.toml's addopts, whatever pytest-xdist's marks do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

GROUPED = """
import os
import pytest


@pytest.mark.parametrize("i", range(6))
def test_where(i):
    with open(os.path.join(os.environ["GROUPED_OUT"], f"ran-{i}"), "w") as out:
        out.write(os.environ["PYTEST_XDIST_WORKER"])
"""


def test_a_module_runs_on_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path),
         "-n", "2", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_grouped.py")],
        env={**os.environ, "GROUPED_OUT": str(tmp_path)}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ran = list(tmp_path.glob("ran-*"))
    workers = {path.read_text() for path in ran}
    assert len(ran) == 6 and len(workers) == 1, workers
