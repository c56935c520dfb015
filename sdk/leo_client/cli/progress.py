"""What `leo` shows while it waits for a generation: a live line on a terminal
(status, elapsed time, queue position and percent when the server reports
them), or one plain line per new state elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from leo_client.cli.output import STATUS_STYLES, Output, state_line
from leo_client.types import Generation


def _description(generation: Generation) -> str:
    style = STATUS_STYLES.get(generation.status, "")
    parts = [escape(generation.id), f"[{style}]{generation.status.name}[/]" if style else generation.status.name]
    if generation.attempts > 1:
        parts.append(f"attempt {generation.attempts}")
    if generation.queue_position is not None:
        parts.append(f"queue position {generation.queue_position}")
    return "  ".join(parts)


class ProgressDisplay:
    """A context manager; `update` is the `on_update` of a wait.

    live: redraw one line on the stderr terminal (cleared at the end).
    lines: where to write one plain line per new state, when not live (None: nowhere).
    """

    def __init__(self, output: Output, *, live: bool, lines: Callable[[Text], None] | None = None) -> None:
        self._started = time.monotonic()
        self._lines = lines
        self._last_line = ""
        self._progress: Progress | None = None
        if live:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),  # the percent, only once the server reports one
                TimeElapsedColumn(),
                console=output.err,
                transient=True,
            )
            self._task = self._progress.add_task("waiting", total=None)

    def update(self, generation: Generation) -> None:
        """Show a new state."""
        if self._progress is not None:
            progress = generation.progress
            self._progress.update(
                self._task,
                description=_description(generation),
                total=None if progress is None else 100,
                completed=progress or 0,
            )
        elif self._lines is not None:
            line = state_line(generation)
            if line.plain != self._last_line:  # a state may change in fields no line shows
                self._last_line = line.plain
                self._lines(line.append(f"  {time.monotonic() - self._started:.1f} s"))

    def stop(self) -> None:
        """Clear the live line (idempotent)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ProgressDisplay:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
