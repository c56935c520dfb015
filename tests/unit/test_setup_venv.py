"""`make setup` (tools/setup_venv.py): a venv is complete only with its
stamp, and what an interrupted setup left is made again, not tripped over.

The steps run through a recorder: these tests check the decisions and their
order; `make setup` itself runs the real steps."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import setup_venv  # noqa: E402  (tools/setup_venv.py, not a package)
from setup_venv import STAMP, Plan, fingerprint, plan, setup  # noqa: E402


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the repository's pyproject files."""
    for name in setup_venv.PYPROJECTS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


class Steps:
    """Records each command; `python -m venv DIR` makes DIR; `interrupt_at`
    raises KeyboardInterrupt (Ctrl-C) instead of running a command whose
    words contain it."""

    def __init__(self, interrupt_at: str | None = None) -> None:
        self.commands: list[list[str]] = []
        self.interrupt_at = interrupt_at

    def __call__(self, command: Sequence[str]) -> None:
        if self.interrupt_at is not None and self.interrupt_at in command:
            raise KeyboardInterrupt
        self.commands.append(list(command))
        if list(command[1:3]) == ["-m", "venv"]:
            (Path(command[3]) / "bin").mkdir(parents=True)


def test_the_fingerprint_follows_the_contents_of_every_pyproject(project):
    before = fingerprint(project)
    (project / "sdk/pyproject.toml").touch()
    assert fingerprint(project) == before
    with open(project / "sdk/pyproject.toml", "a") as sdk:
        sdk.write("\n")
    assert fingerprint(project) != before


def test_the_plan(tmp_path):
    venv = tmp_path / ".venv"
    assert plan(venv, "a") is Plan.CREATE
    venv.mkdir()
    assert plan(venv, "a") is Plan.REBUILD
    (venv / STAMP).write_text("a\n")
    assert plan(venv, "a") is Plan.READY
    assert plan(venv, "b") is Plan.UPDATE


def test_a_new_venv_is_stamped_only_after_the_last_step(project, capsys):
    venv = project / ".venv"
    steps = Steps()
    assert setup(project, venv, run=steps) is Plan.CREATE
    assert [c[1:3] for c in steps.commands] == [["-m", "venv"], ["-m", "pip"], ["-m", "pip"]]
    assert steps.commands[-1][-6:] == [
        "-e",
        str(project / "contract"),
        "-e",
        str(project / "sdk"),
        "-e",
        f"{project}[dev]",
    ]
    assert (venv / STAMP).read_text().strip() == fingerprint(project)
    said = capsys.readouterr().out.splitlines()
    assert said[0] == "setup: .venv is missing"
    assert said[-1] == "setup: .venv is ready"
    assert all(line.startswith("setup: ") for line in said)

    again = Steps()
    assert setup(project, venv, run=again) is Plan.READY
    assert again.commands == []
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("step", ["venv", "--upgrade", "--progress-bar"])
def test_a_setup_interrupted_at_any_step_is_made_again_from_scratch(project, step):
    venv = project / ".venv"
    with pytest.raises(KeyboardInterrupt):
        setup(project, venv, run=Steps(interrupt_at=step))
    assert not (venv / STAMP).exists()
    venv.mkdir(exist_ok=True)
    (venv / "half-installed").write_text("")

    steps = Steps()
    assert setup(project, venv, run=steps) is Plan.REBUILD
    assert not (venv / "half-installed").exists()
    assert steps.commands[0][1:3] == ["-m", "venv"]
    assert plan(venv, fingerprint(project)) is Plan.READY


def test_changed_pyprojects_update_in_place_and_an_interrupted_update_rebuilds(project):
    venv = project / ".venv"
    setup(project, venv, run=Steps())
    (venv / "bin" / "kept").write_text("")
    with open(project / "pyproject.toml", "a") as pyproject:
        pyproject.write("\n# a new dependency\n")

    with pytest.raises(KeyboardInterrupt):
        setup(project, venv, run=Steps(interrupt_at="--progress-bar"))
    # The old stamp went first: the half-updated venv no longer counts as complete.
    assert plan(venv, fingerprint(project)) is Plan.REBUILD

    # Restore the stamp as a finished update would find it, then update for real.
    (venv / STAMP).write_text("an older fingerprint\n")
    steps = Steps()
    assert setup(project, venv, run=steps) is Plan.UPDATE
    assert [c[1:4] for c in steps.commands] == [["-m", "pip", "install"]]
    assert (venv / "bin" / "kept").exists()
    assert plan(venv, fingerprint(project)) is Plan.READY


def test_the_makefile_sets_up_through_the_script():
    makefile = (ROOT / "Makefile").read_text()
    assert "$(PYTHON) tools/setup_venv.py $(VENV)" in makefile
    assert "pip install" not in makefile
