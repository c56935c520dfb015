"""The load generators the bench needs, installed from Debian if missing."""

from __future__ import annotations

import os
import shutil
import subprocess

# Command -> Debian package.
PACKAGES = {"h2load": "nghttp2-client", "wrk": "wrk"}


def missing_packages(which=shutil.which) -> list[str]:
    return [package for command, package in PACKAGES.items() if which(command) is None]


def ensure_installed() -> dict[str, str]:
    """Installs what is missing with apt-get (the bench runs as root, as the
    machines here do); returns each tool's version line."""
    missing = missing_packages()
    if missing:
        if os.geteuid() != 0:
            raise SystemExit(f"make bench needs {', '.join(missing)}: apt-get install {' '.join(missing)} (as root)")
        print(f"installing {', '.join(missing)} with apt-get…", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env, stdout=subprocess.DEVNULL)
    return {
        "h2load": _first_line(["h2load", "--version"]),
        "wrk": _first_line(["wrk", "--version"]),
    }


def _first_line(command: list[str]) -> str:
    # wrk --version exits 1 after printing its version.
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).strip().splitlines()[0]
