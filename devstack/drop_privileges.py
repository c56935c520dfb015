"""Run a program as another user: `python -I drop_privileges.py UID GID PROGRAM [ARG...]`.

It sets the groups, group and user, then execs PROGRAM in the same process
(so its pid is the one the caller started). The caller starts this small
program instead of passing `user=`/`group=` to `subprocess`: with those,
`subprocess` must use fork() rather than vfork(), and a fork() while gRPC
threads are busy in the calling process sometimes crashes the child before
its exec.
"""

import os
import sys


def main(argv: list[str]) -> None:
    uid, gid, program = int(argv[1]), int(argv[2]), argv[3]
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    os.execv(program, argv[3:])


if __name__ == "__main__":
    main(sys.argv)
