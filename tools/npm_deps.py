"""Installs a folder's pinned npm packages (tests/node) into its node_modules, once.

  python tools/npm_deps.py [FOLDER]

`npm ci` installs exactly what package-lock.json pins, from the npm
registry, without running the packages' install scripts. It runs only when
node_modules was not made from this very lock (a stamp in node_modules
holds the lock's SHA-256), and under an exclusive lock on a file beside
node_modules: two setups at once install once, and neither uses a
node_modules the other is still making (npm ci removes it first, the stamp
is written last).
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_TESTS = ROOT / "tests" / "node"
STAMP = ".installed-from-lock"
LOCK = ".npm-install.lock"


def _wanted(folder: Path) -> str:
    return hashlib.sha256((folder / "package-lock.json").read_bytes()).hexdigest()


def installed(folder: Path = NODE_TESTS) -> bool:
    """Whether node_modules holds what package-lock.json pins."""
    stamp = folder / "node_modules" / STAMP
    return stamp.is_file() and stamp.read_text() == _wanted(folder)


def install(folder: Path = NODE_TESTS) -> bool:
    """Install unless already done; True when npm ran."""
    if installed(folder):
        return False
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is not on PATH: install Node.js 20 or later (it comes with npm)")
    with open(folder / LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed(folder):  # another process did it while this one waited
            return False
        subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=folder, check=True)
        (folder / "node_modules" / STAMP).write_text(_wanted(folder))
        return True


def main(argv: list[str]) -> int:
    install(Path(argv[0]).resolve() if argv else NODE_TESTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
