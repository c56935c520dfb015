"""Commands of the embedded PostgreSQL run as its own user, in the process the caller started."""

from __future__ import annotations

import os
import pwd
import subprocess

from devstack.machine import SYSTEM_USER
from devstack.postgres import _as_system_user


def test_a_command_runs_as_the_postgres_user_in_the_started_process():
    command = _as_system_user(["/bin/sh", "-c", 'echo "$$ $(id -u) $(id -g) $(id -G)"'])
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output, _ = process.communicate(timeout=10)
    pid, uid, gid, *groups = (int(word) for word in output.split())

    if os.geteuid() == 0:
        user = pwd.getpwnam(SYSTEM_USER)
        assert (uid, gid, groups) == (user.pw_uid, user.pw_gid, [user.pw_gid])
    else:
        assert (uid, gid) == (os.geteuid(), os.getegid())
    assert pid == process.pid, "the switch must exec in place, so signals and postmaster.pid name the started process"
