"""Reading CPU time and memory out of /proc texts."""

from __future__ import annotations

from bench.procstat import ProcStat, parse_machine_cpu, parse_rss_kib, parse_stat, tree_ticks


def _stat_line(pid: int, comm: str, ppid: int, utime: int, stime: int, cutime: int, cstime: int) -> str:
    # Fields 3..17 of proc(5), then the rest of a real line.
    fields = ["S", ppid, pid, pid, 0, -1, 4194560, 100, 0, 0, 0, utime, stime, cutime, cstime, 20, 0, 1, 0, 123]
    return f"{pid} ({comm}) " + " ".join(str(field) for field in fields)


def test_parse_stat_sums_own_and_reaped_children_time():
    stat = parse_stat(_stat_line(42, "python", ppid=1, utime=100, stime=20, cutime=7, cstime=3))
    assert stat == ProcStat(pid=42, ppid=1, cpu_ticks=130)


def test_parse_stat_with_spaces_and_parentheses_in_the_command_name():
    stat = parse_stat(_stat_line(7, "postgres: a (b) c", ppid=3, utime=1, stime=2, cutime=0, cstime=0))
    assert stat == ProcStat(pid=7, ppid=3, cpu_ticks=3)


def test_parse_stat_of_a_real_process():
    with open("/proc/self/stat") as own:
        stat = parse_stat(own.read())
    assert stat.pid > 0 and stat.ppid > 0 and stat.cpu_ticks >= 0


def test_tree_ticks_counts_descendants_and_not_others():
    stats = [
        ProcStat(pid=10, ppid=1, cpu_ticks=5),  # postmaster
        ProcStat(pid=11, ppid=10, cpu_ticks=7),  # backend
        ProcStat(pid=12, ppid=11, cpu_ticks=1),  # its child
        ProcStat(pid=20, ppid=1, cpu_ticks=100),  # someone else
    ]
    assert tree_ticks(stats, 10) == 13
    assert tree_ticks(stats, 11) == 8
    assert tree_ticks(stats, 99) == 0


def test_parse_rss_kib():
    status = "Name:\tpython\nVmPeak:\t  300000 kB\nVmRSS:\t  123456 kB\nThreads:\t4\n"
    assert parse_rss_kib(status) == 123456


def test_parse_machine_cpu_counts_idle_and_iowait_as_not_busy():
    # user nice system idle iowait irq softirq steal guest guest_nice
    text = "cpu  1000 0 500 8000 400 0 100 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
    busy, total = parse_machine_cpu(text)
    from bench.procstat import CLOCK_TICKS

    assert busy == 1600 / CLOCK_TICKS
    assert total == 10000 / CLOCK_TICKS
