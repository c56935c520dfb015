"""Structured logging: one JSON object per line on stderr.

A line written inside a traced call carries its trace_id and span_id, and
generation_id where the call is about one (leo_mesh.telemetry.tracing)."""

from __future__ import annotations

import logging
import sys
import time

import orjson

from leo_mesh.telemetry import tracing

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, worker: int | None = None) -> None:
        super().__init__()
        self.service = service
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(record.msecs):03d}+00:00",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "event": record.getMessage(),
        }
        if self.worker is not None:
            entry["worker"] = self.worker
        tracing.add_log_fields(entry)
        fields = record.__dict__
        entry.update({k: fields[k] for k in fields.keys() - _RESERVED})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(service: str, level: str = "INFO", *, worker: int | None = None) -> None:
    """JSON lines on stderr for the whole process; `worker`: which of the
    service's worker processes this is (leo_mesh.workers)."""
    # Our lines carry no source line, thread or process: don't gather them
    # (the caller's frame lookup alone was a third of a line's cost; the
    # logging cookbook's advice for hot paths).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, worker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request's full URL at INFO; a webhook URL's query may
    # hold a customer's secret. Our own lines name the host only.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
