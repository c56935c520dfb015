"""N worker processes of one service on one port (SO_REUSEPORT, which gRPC
servers set on Linux): the kernel spreads connections across them.

The parent only supervises: SIGTERM/SIGINT are passed on to every worker
(each drains as a single process would); a worker that exits on its own
stops the others and the parent exits 1, so the supervisor above (compose,
Kubernetes, `make run`) restarts the service as a whole.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable

log = logging.getLogger("leo.workers")

STOP_TIMEOUT_S = 60.0


def supervise(count: int, target: Callable[[int], int], *, exited: Callable[[int], None] = lambda pid: None) -> int:
    """Run target(index) in `count` processes until a signal or a death; the
    exit code. exited(pid) is told of each worker once it is gone."""
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    workers = [context.Process(target=_run, args=(target, index), name=f"worker-{index}") for index in range(count)]
    for worker in workers:
        worker.start()
    log.info("workers started", extra={"workers": count, "pids": [w.pid for w in workers]})
    died = None
    while not stop.wait(0.2):
        died = next((w for w in workers if not w.is_alive()), None)
        if died is not None:
            log.critical("a worker exited; stopping the others", extra={"pid": died.pid, "exit_code": died.exitcode})
            break
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            worker.terminate()  # SIGTERM: the worker drains
    for worker in workers:
        worker.join(STOP_TIMEOUT_S)
        if worker.is_alive():
            worker.kill()
            worker.join()
        if worker.pid is not None:
            exited(worker.pid)
    if died is not None:
        return 1
    return max((w.exitcode or 0 for w in workers), default=0)


def _run(target: Callable[[int], int], index: int) -> None:
    raise SystemExit(target(index))
