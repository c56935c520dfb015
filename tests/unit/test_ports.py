"""Ports for the servers tests start: outside the range the kernel hands to
outgoing connections, each once, and only ports nothing holds."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devstack.ports import PortPool, free_port, non_ephemeral


def test_ports_handed_out_are_below_the_ephemeral_range_and_never_twice():
    first_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    taken = [free_port() for _ in range(300)]
    assert len(set(taken)) == len(taken)
    assert all(port < first_ephemeral for port in taken)
    assert non_ephemeral().stop == first_ephemeral


def test_a_port_something_holds_is_skipped():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        held = holder.getsockname()[1]
        pool = PortPool(range(held, held + 1))
        with pytest.raises(RuntimeError, match="no free port"):
            pool.take()


def test_a_pool_stays_in_its_block_and_runs_out():
    block = range(20_000, 20_040)
    pool = PortPool(block)
    taken = []
    with pytest.raises(RuntimeError, match="no free port"):
        while True:
            taken.append(pool.take())
    assert len(set(taken)) == len(taken) and set(taken) <= set(block)
