"""CPU time and memory of processes, read from /proc.

A process tree's CPU time is the sum over its live processes of their own
time plus the time of their children already reaped (cutime/cstime): a
PostgreSQL backend that exits during a run still counts, in the postmaster.
Trees, not process groups: each PostgreSQL backend leads a session of its own.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    # utime + stime + cutime + cstime, in clock ticks.
    cpu_ticks: int


def parse_stat(text: str) -> ProcStat:
    """One /proc/PID/stat line. The command name is in parentheses and may
    itself hold spaces and parentheses, so fields are counted after the last ')'."""
    head, _, tail = text.rpartition(")")
    pid = int(head.split("(", 1)[0])
    fields = tail.split()
    # tail starts at field 3 (state); ppid is field 4, utime..cstime are 14..17.
    utime, stime, cutime, cstime = (int(fields[i]) for i in range(11, 15))
    return ProcStat(pid=pid, ppid=int(fields[1]), cpu_ticks=utime + stime + cutime + cstime)


def _all_stats() -> list[ProcStat]:
    stats = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # it exited meanwhile
                stats.append(parse_stat((entry / "stat").read_text()))
    return stats


def tree_ticks(stats: list[ProcStat], root: int) -> int:
    """CPU ticks of `root` and every live descendant."""
    children: dict[int, list[ProcStat]] = {}
    by_pid = {}
    for stat in stats:
        children.setdefault(stat.ppid, []).append(stat)
        by_pid[stat.pid] = stat
    if root not in by_pid:
        return 0
    total, todo = 0, [by_pid[root]]
    while todo:
        stat = todo.pop()
        total += stat.cpu_ticks
        todo.extend(children.get(stat.pid, ()))
    return total


def tree_cpu_s(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process tree."""
    stats = _all_stats()
    return {name: tree_ticks(stats, pid) / CLOCK_TICKS for name, pid in roots.items()}


def parse_rss_kib(status_text: str) -> int:
    """VmRSS of a /proc/PID/status text, in KiB."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError("no VmRSS line (a kernel thread, or the process is a zombie)")


def rss_kib(pid: int) -> int:
    return parse_rss_kib((PROC / str(pid) / "status").read_text())


def parse_machine_cpu(stat_text: str) -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot, from /proc/stat's
    first line; idle and iowait are not busy."""
    fields = [int(value) for value in stat_text.splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])  # guest time is already inside user time
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def machine_cpu_s() -> tuple[float, float]:
    return parse_machine_cpu((PROC / "stat").read_text())


class CpuMeter:
    """CPU used by named process trees and by the whole machine between
    start() and stop()."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self._groups: dict[str, float] = {}
        self._machine: tuple[float, float] = (0.0, 0.0)
        self.groups_s: dict[str, float] = {}
        self.machine_busy_s = 0.0
        self.machine_total_s = 0.0

    def start(self) -> CpuMeter:
        self._groups = tree_cpu_s(self.roots)
        self._machine = machine_cpu_s()
        return self

    def stop(self) -> CpuMeter:
        groups = tree_cpu_s(self.roots)
        busy, total = machine_cpu_s()
        self.groups_s = {name: groups[name] - self._groups[name] for name in groups}
        self.machine_busy_s = busy - self._machine[0]
        self.machine_total_s = total - self._machine[1]
        return self
