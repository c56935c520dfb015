"""Ports for the servers the dev stack, the tests and the bench start, and
which of the ports `make run` is set to use something else holds.

A port is chosen here and bound later by another process, so something else
could take it in between. Ports are therefore taken from below the kernel's
ephemeral range, where neither outgoing connections nor `bind(port 0)` draw
theirs; each is handed out once per process and checked free when handed
out. Processes that choose ports at the same time (pytest-xdist workers)
each take a block of their own (`use_block`).
"""

from __future__ import annotations

import itertools
import random
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from textwrap import shorten

import psutil

# Below this, ports are often fixed by other software.
LOWEST = 10_000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def non_ephemeral() -> range:
    """The ports from LOWEST up to the start of the ephemeral range."""
    try:
        first_ephemeral = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32_768  # Linux's default
    return range(LOWEST, max(first_ephemeral, LOWEST + 1_000))


class PortPool:
    """Hands out the ports of `ports` once each, from a random start, skipping
    any that cannot be bound right now."""

    def __init__(self, ports: range) -> None:
        start = random.randrange(len(ports))
        self._order = itertools.chain(ports[start:], ports[:start])

    def take(self) -> int:
        for port in self._order:
            if _bindable(port):
                return port
        raise RuntimeError("no free port left in this process's block")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_pool = PortPool(non_ephemeral())


def use_block(index: int, count: int) -> None:
    """Take ports only from block `index` of `count` equal blocks."""
    global _pool
    ports = non_ephemeral()
    size = len(ports) // count
    _pool = PortPool(ports[index * size : (index + 1) * size])


def free_port() -> int:
    """A port on 127.0.0.1 that nothing uses now and that this process has not handed out before."""
    return _pool.take()


@dataclass(frozen=True)
class PortInUse:
    """A port `make run` is set to listen on that something else holds."""

    variable: str  # the setting that chose it
    port: int
    holder: str | None  # "pid N (command line)", when this user may see it

    def __str__(self) -> str:
        by = f" by {self.holder}" if self.holder else ""
        return f"port {self.port} ({self.variable}) is in use{by}: stop it or set {self.variable} to a free port"


def in_use(ports: Iterable[tuple[str, int]], host: str = "127.0.0.1") -> list[PortInUse]:
    """The ports of `ports` (setting, port; 0 means any free port) that a
    server could not listen on now, as our servers bind: a port that only
    has connections in TIME_WAIT (a server that just stopped) is free."""
    return [PortInUse(name, port, _holder(port)) for name, port in ports if port and not _listenable(host, port)]


def _listenable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _holder(port: int) -> str | None:
    """Who listens on `port`, if the system tells this user."""
    try:
        connections = psutil.net_connections("tcp")
    except psutil.Error:  # macOS: only root may list every socket
        return None
    for connection in connections:
        # laddr is an (ip, port) named tuple, or () for a socket without an address.
        listens = connection.status == psutil.CONN_LISTEN and getattr(connection.laddr, "port", None) == port
        if listens and connection.pid is not None:
            try:
                command = " ".join(psutil.Process(connection.pid).cmdline())
            except psutil.Error:
                return f"pid {connection.pid}"
            return f"pid {connection.pid} ({shorten(command, 100, placeholder=' …')})"
    return None
