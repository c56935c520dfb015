"""The README's Python and command-line examples run, as written, against a mesh."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
FAST = {"MOCK_AI_MIN_DELAY_S": "0.2", "MOCK_AI_MAX_DELAY_S": "0.5"}


def code_blocks(section: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block under the README heading `## section`."""
    body = README.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", body, re.S)


PYTHON = code_blocks("Python")
COMMAND_LINE = code_blocks("Command line")


@pytest.fixture(scope="module")
def env(make_mesh) -> dict[str, str]:
    """What a reader has: the mesh's address, a key, DATABASE_URL, and the venv on PATH."""
    mesh = make_mesh(env=FAST)
    env = {name: value for name, value in os.environ.items() if not name.startswith("LEO_API_")}
    env.update(
        LEO_API_TARGET=f"127.0.0.1:{mesh.ports.envoy}",
        LEO_API_KEY=mesh.create_api_key("reader"),
        DATABASE_URL=mesh.database_url,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def test_both_sections_have_examples():
    assert [language for language, _ in PYTHON] == ["python", "python"]
    assert [language for language, _ in COMMAND_LINE] == ["sh"]


@pytest.mark.parametrize("code", [code for _, code in PYTHON], ids=["blocking", "asyncio"])
def test_the_python_examples_run(env, code, tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    assert "COMPLETE" in run.stdout
    if "download(" in code:
        assert sorted(p.suffix for p in (tmp_path / "lighthouse").iterdir()) == [".png", ".png"]


@pytest.mark.parametrize("code", [code for _, code in COMMAND_LINE], ids=["generations"])
def test_the_command_line_examples_run(env, code, tmp_path):
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=tmp_path,  # where examples save files
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout
    if "--out videos" in code:
        assert [p.suffix for p in (tmp_path / "videos").iterdir()] == [".webp"]
