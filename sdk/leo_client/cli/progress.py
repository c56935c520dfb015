"""What `leo` shows while it waits for a generation: a live line on a terminal
(status, elapsed time, queue position and percent when the server reports
them) with a note under it on what happened last, or one plain line per new
state and per connection event elsewhere."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType

import grpc
from rich.console import RenderableType
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from leo_client.cli.output import STATUS_STYLES, Output, standing, state_line
from leo_client.errors import ApiError
from leo_client.following import ConnectionEvent, Reconnected
from leo_client.types import Generation, Phase

_TROUBLE = {
    grpc.StatusCode.UNAVAILABLE: "API unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "no answer in time",
    grpc.StatusCode.CANCELLED: "stream cut",
}


def trouble(error: ApiError, *, brief: bool = False) -> str:
    """Why a watch broke: the code in a few words and the message, e.g.
    'API unavailable: failed to connect …: Connection refused'. Brief: only
    the message's last part, where gRPC and Envoy name the root cause."""
    message = error.message.rsplit(": ", 1)[-1] if brief else error.message
    return " ".join(f"{_TROUBLE.get(error.code, 'server error')}: {message}".split())


def changes(before: Generation | None, after: Generation) -> list[str]:
    """What a new state says happened that its fields alone do not: the
    generation was sent to the AI again, its progress started over, or it
    went back to waiting in the mesh's queue."""
    if before is None or after.done:
        return []
    said = []
    if before.attempts and after.attempts > before.attempts:
        said.append("re-dispatched")
    if before.progress is not None and (after.progress is None or after.progress < before.progress):
        said.append(f"progress reset (was {before.progress}%)")
    if before.phase in (Phase.STARTING, Phase.RUNNING) and after.phase is Phase.QUEUED:
        said.append("queued again")
    return said


def connection_note(event: ConnectionEvent, *, brief: bool = False) -> str:
    """A connection event in words (brief: the reason's root cause only, for the live line)."""
    if isinstance(event, Reconnected):
        tries = "1 try" if event.attempts == 1 else f"{event.attempts} tries"
        return f"reconnected after {event.outage_s:.1f} s ({tries})"
    return f"reconnecting, try {event.attempt} ({trouble(event.error, brief=brief)})"


def _description(generation: Generation) -> str:
    style = STATUS_STYLES.get(generation.status, "")
    parts = [escape(generation.id), f"[{style}]{generation.status.name}[/]" if style else generation.status.name]
    if generation.attempts > 1:
        parts.append(f"attempt {generation.attempts}")
    if generation.phase is not Phase.UNSPECIFIED:
        parts.append(escape(standing(generation)))
    return "  ".join(parts)


class _LiveProgress(Progress):
    """Rich's progress line, and under it a line for the note (what happened
    last), cut to the terminal's width."""

    note = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield from super().get_renderables()
        if self.note:
            yield Text(f"  {self.note}", style="italic", no_wrap=True, overflow="ellipsis")


class ProgressDisplay:
    """A context manager; `update` is the `on_update` of a wait, `connection` its `on_connection`.

    live: redraw the progress line and its note on the stderr terminal (cleared at the end).
    lines: where to write one plain line per new state, when not live (None: nowhere).
    notes: where to write one plain line per connection event, when not live (None: nowhere).
    Once stopped it shows nothing more, whatever the wait still reports.
    """

    def __init__(
        self,
        output: Output,
        *,
        live: bool,
        lines: Callable[[Text], None] | None = None,
        notes: Callable[[Text], None] | None = None,
    ) -> None:
        self._started = time.monotonic()
        self._lines = lines
        self._notes = notes
        self._lock = threading.Lock()
        self._stopped = False
        self._last: Generation | None = None
        self._last_line = ""
        self._note = ""
        self._just_reconnected = False
        self._progress: _LiveProgress | None = None
        if live:
            self._progress = _LiveProgress(
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
        """Show a new state, and what it says happened."""
        with self._lock:
            said = changes(self._last, generation)
            self._last = generation
            if said:
                # What the first state after a reconnect shows belongs with it.
                self._note = f"{self._note}; {', '.join(said)}" if self._just_reconnected else ", ".join(said)
            self._just_reconnected = False
            if self._stopped:
                return
            if self._progress is not None:
                self._redraw()
            elif self._lines is not None:
                line = state_line(generation)
                if said:
                    line.append(f"  {', '.join(said)}")
                if line.plain != self._last_line:  # a state may change in fields no line shows
                    self._last_line = line.plain
                    self._lines(line.append(f"  {self._elapsed()}"))

    def connection(self, event: ConnectionEvent) -> None:
        """Show what the connection does: why it is reconnecting and which try, or that it is back."""
        with self._lock:
            self._note = connection_note(event, brief=True)
            self._just_reconnected = isinstance(event, Reconnected)
            if self._stopped:
                return
            if self._progress is not None:
                self._redraw()
            elif self._notes is not None:
                note = connection_note(event)
                line = f"{self._last.id}  {note}" if self._last else note
                if not isinstance(event, Reconnected):
                    line += f"; next in {event.delay_s:.1f} s, giving up in {event.gives_up_in_s:.0f} s"
                self._notes(Text(f"{line}  {self._elapsed()}"))

    @property
    def note(self) -> str:
        """What happened last, in words: the note under the live line."""
        return self._note

    def _redraw(self) -> None:
        assert self._progress is not None
        progress = self._last.progress if self._last else None
        self._progress.note = self._note
        self._progress.update(
            self._task,
            description=_description(self._last) if self._last else "waiting",
            total=None if progress is None else 100,
            completed=progress or 0,
        )

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self._started:.1f} s"

    def stop(self) -> None:
        """Clear the live line and show nothing more (idempotent)."""
        with self._lock:
            self._stopped = True
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
