"""Waiting for a generation in the foreground: the wait runs in a thread of
its own, Ctrl-C stops only the waiting for it, and what follows a Ctrl-C
(the cancel question, a cancel, or the end that arrived meanwhile)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import click

from leo_client.cli.exits import ExitCode, one_line
from leo_client.cli.output import Output
from leo_client.client import Client
from leo_client.errors import FailedPrecondition, GenerationError, WaitTimeout
from leo_client.following import final_result
from leo_client.types import Generation

Show = Callable[[Generation], None]


class Waiting:
    """`run()` (a wait) in a daemon thread while this one waits for it: Ctrl-C
    then interrupts only this wait, never gRPC's own code (whose locks a
    KeyboardInterrupt could leave held, hanging the cancel and the exit),
    and the wait goes on meanwhile."""

    def __init__(self, run: Callable[[], Generation]) -> None:
        self._run = run
        self._done = threading.Event()
        self._value: Generation | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._target, name="leo wait", daemon=True).start()

    def _target(self) -> None:
        try:
            self._value = self._run()
        except BaseException as error:
            self._error = error
        finally:
            self._done.set()

    def join(self) -> None:
        """Block until the wait ends (a Ctrl-C interrupts this, not the wait)."""
        while not self._done.wait(0.1):
            pass

    def result(self) -> Generation:
        """The wait's result, once it ended; its error raised."""
        self.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value

    def final_state(self) -> Generation | None:
        """The final state, if the wait has reached one by now (COMPLETE, FAILED or CANCELLED)."""
        if not self._done.is_set():
            return None
        if isinstance(self._error, GenerationError):
            return self._error.generation
        return self._value


def follow(waiting: Waiting, show: Show) -> None:
    """Show a wait's end; a FAILED, CANCELLED or unfinished end is shown, then raised."""
    try:
        final = waiting.result()
    except (GenerationError, WaitTimeout) as exc:
        if exc.generation is not None:
            show(exc.generation)
        raise
    show(final)


def interrupted(client: Client, out: Output, waiting: Waiting, generation_id: str, *, cancel: bool, show: Show) -> None:
    """Ctrl-C while waiting (the display has stopped). On a terminal, ask
    whether to cancel unless `cancel` already says so. Then:

    - the generation reached a final state before the answer, or the cancel
      found it final (FAILED_PRECONDITION): its end is shown as if nobody had
      pressed Ctrl-C (COMPLETE returns, exit 0; FAILED or CANCELLED raises,
      exit 1), saying that it ended before it could be cancelled;
    - cancelled: exit 130;
    - not to be cancelled: it goes on; exit 130 with how to follow it.
    """
    if not cancel and sys.stdin.isatty():
        try:
            cancel = click.confirm(f"\nCancel generation {generation_id}?", default=False, err=True)
        except click.Abort:
            cancel = False
    final = waiting.final_state()
    if final is None and cancel:
        try:
            cancelled = client.cancel(generation_id)
        except FailedPrecondition as exc:
            final = client.get(generation_id)
            if not final.done:
                out.note(f"not cancelled: {one_line(exc)}")
                raise click.exceptions.Exit(ExitCode.INTERRUPTED) from exc
        else:
            if out.json:
                out.document({"generation": cancelled.to_dict()})
            out.note(f"cancelled {generation_id}")
            raise click.exceptions.Exit(ExitCode.INTERRUPTED)
    if final is None:
        out.note(f"{generation_id} goes on; follow it with: leo watch {generation_id}")
        raise click.exceptions.Exit(ExitCode.INTERRUPTED)
    if cancel:
        out.note(f"{generation_id} ended {final.status.name} before it could be cancelled")
    show(final)
    final_result(final)
