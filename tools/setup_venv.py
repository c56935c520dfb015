"""`make setup`: the project's virtual environment, complete or made again.

  python3 tools/setup_venv.py [VENV]      (default: .venv of the repository)

A venv counts as complete only while its stamp holds the fingerprint of
the pyproject files it was installed from; the stamp is written last, once
every step has succeeded, and removed before a venv is changed. So a venv
without a stamp is what an interrupted setup left (Ctrl-C, a lost
connection): it is removed and made again, nobody has to `rm -rf .venv`.
Each step says what it does before it starts; pip shows its own progress.
Nothing is printed when the venv is complete.
"""

from __future__ import annotations

import argparse
import enum
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = ".installed-stamp"
# What `make setup` installs, editable: the public contract, the client and
# the project with its development tools; and the files that say what they need.
INSTALL = [("contract", ""), ("sdk", ""), (".", "[dev]")]
PYPROJECTS = ["pyproject.toml", "contract/pyproject.toml", "sdk/pyproject.toml"]

Run = Callable[[Sequence[str]], None]


class Plan(enum.Enum):
    READY = "complete for these pyproject files"
    CREATE = "missing"
    REBUILD = "incomplete: an earlier setup did not finish"
    UPDATE = "out of date: a pyproject file changed"


def fingerprint(root: Path) -> str:
    """What the venv's packages depend on: the pyproject files' contents
    (not their times: a checkout that rewrites the same bytes changes nothing)."""
    digest = hashlib.sha256()
    for name in PYPROJECTS:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()


def plan(venv: Path, wanted: str) -> Plan:
    """What setup must do to `venv` so that it is complete for `wanted`."""
    if not venv.exists():
        return Plan.CREATE
    try:
        stamp = (venv / STAMP).read_text().strip()
    except FileNotFoundError:
        return Plan.REBUILD
    return Plan.READY if stamp == wanted else Plan.UPDATE


def _say(message: str) -> None:
    print(f"setup: {message}", flush=True)


def _check_call(command: Sequence[str]) -> None:
    subprocess.run(command, check=True)


def setup(root: Path, venv: Path, run: Run = _check_call) -> Plan:
    """Bring `venv` to complete for `root`'s pyproject files; returns what it found."""
    wanted = fingerprint(root)
    found = plan(venv, wanted)
    if found is Plan.READY:
        return found
    _say(f"{venv.name} is {found.value}")
    python = str(venv / "bin" / "python")
    if found is Plan.REBUILD:
        _say(f"removing {venv.name} to make it again")
        shutil.rmtree(venv)
    if found is Plan.UPDATE:
        # From here until the stamp is written again, the venv counts as incomplete.
        (venv / STAMP).unlink()
    else:
        _say(f"creating {venv.name} with Python {sys.version.split()[0]} ({sys.executable})")
        run([sys.executable, "-m", "venv", str(venv)])
        _say("upgrading pip")
        run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    _say("installing the contract, the client and the project (a few minutes the first time; pip's progress follows)")
    editable = [arg for path, extras in INSTALL for arg in ("-e", f"{(root / path).resolve()}{extras}")]
    run([python, "-m", "pip", "install", "--progress-bar", "on", *editable])
    stamp = venv / STAMP
    partial = stamp.with_name(STAMP + ".partial")
    partial.write_text(wanted + "\n")
    partial.replace(stamp)
    _say(f"{venv.name} is ready")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("venv", nargs="?", type=Path, default=ROOT / ".venv")
    args = parser.parse_args(argv)
    # This runs under the machine's python3, whatever its version.
    if sys.version_info < (3, 11):  # noqa: UP036
        _say(f"needs Python 3.11 or newer, {sys.executable} is {sys.version.split()[0]} (make PYTHON=python3.12 …)")
        return 1
    try:
        setup(ROOT, args.venv.resolve(), run=_check_call)
    except subprocess.CalledProcessError as failed:
        _say(f"failed ({' '.join(failed.cmd)} exited with {failed.returncode}); the next run starts again")
        return 1
    except KeyboardInterrupt:
        _say("interrupted; the next run makes the venv again")
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
