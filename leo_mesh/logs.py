"""Structured logging: one JSON object per line on stderr.

A line written inside a traced call carries its trace_id and span_id, and
generation_id where the call is about one (leo_mesh.telemetry.tracing).

`info_line` is for the hottest lines (one per RPC): the same line as
`logger.info(event, extra=fields)`, written without building a LogRecord,
which costs more than everything else the line takes.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson

from leo_mesh.telemetry import tracing

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class _Clock:
    """RFC 3339 timestamps in UTC to the millisecond; the date and time of
    day are formatted once a second, not once a line."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second, self._text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._text}.{int((created - second) * 1000):03d}+00:00"


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, worker: int | None = None) -> None:
        super().__init__()
        self.service = service
        self.worker = worker
        self._clock = _Clock()

    def entry(self, created: float, level: str, logger: str, event: str) -> dict[str, Any]:
        """A line's fields before its own: when, how severe, who, what, and the current call's trace."""
        entry: dict[str, Any] = {
            "ts": self._clock.timestamp(created),
            "level": level,
            "service": self.service,
            "logger": logger,
            "event": event,
        }
        if self.worker is not None:
            entry["worker"] = self.worker
        tracing.add_log_fields(entry)
        return entry

    def format(self, record: logging.LogRecord) -> str:
        entry = self.entry(record.created, record.levelname.lower(), record.name, record.getMessage())
        entry.update({key: value for key, value in record.__dict__.items() if key not in _RESERVED})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class JsonHandler(logging.StreamHandler):
    """configure()'s handler: JsonFormatter's lines on a stream."""

    formatter: JsonFormatter

    def __init__(self, stream: Any, formatter: JsonFormatter) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)

    def write_line(self, logger: str, event: str, fields: Mapping[str, Any]) -> None:
        """An INFO line with these fields, as emit() would write it for the same record."""
        entry = self.formatter.entry(time.time(), "info", logger, event)
        entry.update(fields)
        line = orjson.dumps(entry, default=str).decode() + self.terminator
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            try:
                self.stream.write(line)
                self.flush()
            except Exception:
                self.handleError(logging.makeLogRecord({"name": logger, "msg": event, **fields}))


def _only_handler(logger: logging.Logger) -> JsonHandler | None:
    """The JsonHandler an INFO record of `logger` would reach, if it is the
    only handler it would reach and no filter stands in the way."""
    found: JsonHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if found is not None or not isinstance(handler, JsonHandler) or handler.filters:
                return None
            if handler.level > logging.INFO:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found


def info_line(logger: logging.Logger, event: str, fields: Mapping[str, Any]) -> None:
    """`logger.info(event, extra=fields)`, written straight to configure()'s
    handler when that is where it would go and nothing else would see it;
    through logging otherwise (another handler or a filter is attached)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _only_handler(logger)
    if handler is None:
        logger.info(event, extra=dict(fields))
        return
    handler.write_line(logger.name, event, fields)


class _UndecodableMetadata(logging.Filter):
    """Drops the line gRPC's Python library writes for a metadata value that
    is not UTF-8: that whole value (an API key, say) at ERROR with a
    traceback, twice per call, at any client's will. The library then reads
    the value as Latin-1 and the call goes on (a key that is not UTF-8
    authenticates no one: UNAUTHENTICATED)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Invalid encoding on"))


# The logger of grpc's Cython core (grpc/_cython/_cygrpc/grpc_string.pyx.pxi).
GRPC_CORE_LOGGER = "grpc._cython.cygrpc"
_undecodable_metadata = _UndecodableMetadata()


def configure(service: str, level: str = "INFO", *, worker: int | None = None) -> None:
    """JSON lines on stderr for the whole process; `worker`: which of the
    service's worker processes this is (leo_mesh.workers)."""
    # Our lines carry no source line, thread or process: don't gather them
    # (the caller's frame lookup alone was a third of a line's cost; the
    # logging cookbook's advice for hot paths).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [JsonHandler(sys.stderr, JsonFormatter(service, worker))]
    root.setLevel(level.upper())
    # httpx logs every request's full URL at INFO; a webhook URL's query may
    # hold a customer's secret. Our own lines name the host only.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger(GRPC_CORE_LOGGER).addFilter(_undecodable_metadata)
