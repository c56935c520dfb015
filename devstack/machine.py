"""What the project makes on the machine outside the clone, each made once
and race-free: the system user that runs the embedded PostgreSQL under
root, and Debian packages (the bench's load generators).

PostgreSQL refuses to run as root, so a root `make run` or `make test`
starts it as SYSTEM_USER, made here on first use. Several processes may
get here at once on a machine that lacks the user (pytest-xdist workers
each start a PostgreSQL): they take turns under an exclusive lock on
LOCK_PATH and look again once they hold it, so exactly one `useradd` runs
and every process uses the uid that exists. Packages are installed under
the same lock (apt-get refuses to run beside another apt-get).

Standard library only: `.ci/run` removes the user with the machine's own
Python before anything is installed (`python3 -m devstack.machine remove-user`).
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

SYSTEM_USER = "leo-postgres"
# One lock for every clone on the machine; /run/lock is a tmpfs, gone at reboot.
LOCK_PATH = Path("/run/lock/leo-mesh.lock")


@contextlib.contextmanager
def _machine_lock(path: Path = LOCK_PATH) -> Iterator[None]:
    """Held by one process of the machine at a time (flock; released if the holder dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _entry(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def ensure_user(name: str = SYSTEM_USER) -> pwd.struct_passwd:
    """The user's passwd entry, creating a system user and group of that
    name first if there is none (root only)."""
    entry = _entry(name)
    if entry is not None:
        return entry
    with _machine_lock():
        entry = _entry(name)  # made by whoever held the lock before us
        if entry is not None:
            return entry
        made = subprocess.run(
            [
                "useradd", "--system", "--user-group", "--no-create-home",
                "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                "--comment", "Leo generation mesh, embedded PostgreSQL", name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        entry = _entry(name)
        if entry is None:
            raise RuntimeError(f"could not create system user {name!r}: {made.stderr.strip()}")
        return entry


def remove_user(name: str = SYSTEM_USER) -> bool:
    """Remove the user and its group if they exist; True if anything was removed."""
    removed = False
    with _machine_lock():
        if _entry(name) is not None:
            subprocess.run(["userdel", name], check=True, capture_output=True, text=True)
            removed = True
        with contextlib.suppress(KeyError):
            grp.getgrnam(name)
            subprocess.run(["groupdel", name], check=True, capture_output=True, text=True)
            removed = True
    return removed


def ensure_traversable(path: Path) -> list[Path]:
    """Let other users pass through every directory above `path` (o+x, not
    o+r: they can reach the data directory but list nothing on the way);
    returns the directories that needed it."""
    changed = []
    for parent in Path(path).resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
            changed.append(parent)
    return changed


def missing_packages(packages: dict[str, str], which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """The Debian packages (values) whose commands (keys) are not on PATH."""
    return [package for command, package in packages.items() if which(command) is None]


def ensure_packages(packages: dict[str, str]) -> None:
    """Install the Debian packages (values) whose commands (keys) are not on
    PATH, as root with apt-get; one install at a time on the machine."""
    missing = missing_packages(packages)
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"needs {', '.join(missing)}: apt-get install {' '.join(missing)} (as root)")
    with _machine_lock():
        missing = missing_packages(packages)  # installed by whoever held the lock before us
        if not missing:
            return
        print(f"installing {', '.join(missing)} with apt-get…", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )


def main(argv: list[str]) -> int:
    if argv != ["remove-user"]:
        print("usage: python3 -m devstack.machine remove-user", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print(f"not root: no system user {SYSTEM_USER!r} to remove", file=sys.stderr)
        return 0
    try:
        if remove_user():
            print(f"removed system user {SYSTEM_USER!r}")
    except subprocess.CalledProcessError as failed:
        print(f"could not remove system user {SYSTEM_USER!r}: {failed.stderr.strip()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
