"""The JSON lines a service would write, captured in process."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator

from leo_mesh.logs import JsonFormatter


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("test"))
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@contextlib.contextmanager
def captured_lines(logger_name: str | None = None) -> Iterator[list[dict]]:
    """The lines `logger_name` (the root logger: every line) writes at INFO
    and above meanwhile, as JSON objects."""
    handler, logger = _Lines(), logging.getLogger(logger_name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
