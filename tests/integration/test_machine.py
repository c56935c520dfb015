"""The embedded PostgreSQL's system user, made by many processes at once on
a machine that lacks it (pytest-xdist workers on a fresh machine)."""

from __future__ import annotations

import multiprocessing
import os
import pwd
import uuid
from pathlib import Path

import pytest

from devstack import machine

# Creating users needs root; CI runs as root (.ci/run), so this always runs there.
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creating system users needs root")

PROCESSES = 8


def _ensure_at_once(name: str, barrier, uids) -> None:
    barrier.wait()
    uids.put(machine.ensure_user(name).pw_uid)


def passwd_entries(name: str) -> list[str]:
    return [line for line in Path("/etc/passwd").read_text().splitlines() if line.split(":")[0] == name]


def test_processes_that_make_the_user_at_once_all_get_the_one_that_exists():
    name = f"leo-test-{uuid.uuid4().hex[:8]}"
    spawn = multiprocessing.get_context("spawn")
    barrier, uids = spawn.Barrier(PROCESSES), spawn.Queue()
    workers = [spawn.Process(target=_ensure_at_once, args=(name, barrier, uids)) for _ in range(PROCESSES)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert [worker.exitcode for worker in workers] == [0] * PROCESSES
        seen = {uids.get(timeout=5) for _ in range(PROCESSES)}
        assert len(passwd_entries(name)) == 1
        assert seen == {pwd.getpwnam(name).pw_uid}
    finally:
        machine.remove_user(name)
    assert passwd_entries(name) == []


def test_removing_a_user_that_is_not_there_changes_nothing():
    assert machine.remove_user(f"leo-test-{uuid.uuid4().hex[:8]}") is False


def test_other_users_may_pass_through_the_parents_of_a_data_directory_but_not_list_them(tmp_path):
    parent = tmp_path / "closed"
    data = parent / "data"
    data.mkdir(parents=True)
    parent.chmod(0o700)
    assert parent in machine.ensure_traversable(data)
    assert parent.stat().st_mode & 0o777 == 0o701
    assert machine.ensure_traversable(data) == []
