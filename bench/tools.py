"""The load generators the bench needs, installed from Debian if missing."""

from __future__ import annotations

import subprocess

from devstack import machine

# Command -> Debian package.
PACKAGES = {"h2load": "nghttp2-client", "wrk": "wrk"}


def ensure_installed() -> dict[str, str]:
    """Installs what is missing (devstack.machine: as root, one
    apt-get at a time on the machine); returns each tool's version line."""
    machine.ensure_packages(PACKAGES)
    return {
        "h2load": _first_line(["h2load", "--version"]),
        "wrk": _first_line(["wrk", "--version"]),
    }


def _first_line(command: list[str]) -> str:
    # wrk --version exits 1 after printing its version.
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).strip().splitlines()[0]
