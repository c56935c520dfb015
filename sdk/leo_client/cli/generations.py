"""`leo generate|get|list|watch|cancel` and `leo webhook-secret rotate`."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path

import click

from leo_client.cli.output import Output
from leo_client.cli.progress import ProgressDisplay
from leo_client.cli.state import State, json_option
from leo_client.cli.waiting import Waiting, follow, interrupted
from leo_client.types import Generation, Kind, Model, Priority, Status

MAX_PAGE_SIZE = 100


class Size(click.ParamType):
    """WIDTHxHEIGHT in pixels, e.g. 1024x768; the server checks the bounds."""

    name = "WIDTHxHEIGHT"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(value))
        if not match or not int(match[1]) or not int(match[2]):
            self.fail(f"{value!r} is not WIDTHxHEIGHT with both above 0, e.g. 1024x768", param, ctx)
        return int(match[1]), int(match[2])


OUT_OPTION = click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Save the generation's files in DIR (made if missing), named <id>-<index>.<ext>.",
)


def _save(state: State, out: Output, generation: Generation, directory: Path | None) -> None:
    """Download the files of a COMPLETE generation into `directory`, if one was given; say where on stderr."""
    if directory is None or generation.status is not Status.COMPLETE:
        return
    for path in state.client().download(generation, directory):
        out.note(f"saved {path}")


@click.command()
@click.argument("prompt")
@click.option(
    "--model", type=click.Choice([m.value for m in Model if m is not Model.UNSPECIFIED]), help="Default sdxl."
)
@click.option(
    "--size", type=Size(), metavar="WIDTHxHEIGHT", help="Pixels, 64 to 2048 in multiples of 8 (default 1024x1024)."
)
@click.option(
    "--kind",
    type=click.Choice([k.value for k in Kind if k is not Kind.UNSPECIFIED]),
    help="image: still images (default); video: one short animation.",
)
@click.option(
    "--priority",
    type=click.Choice([p.value for p in Priority if p is not Priority.UNSPECIFIED]),
    help="How soon it runs against the others waiting (up to what the key allows).  [default: normal]",
)
@click.option("--webhook", "webhook_url", metavar="URL", help="Receives the final state, signed (needs a secret).")
@click.option("--wait/--no-wait", default=False, help="Follow the generation to its end.  [default: no-wait]")
@OUT_OPTION
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    default=600,
    show_default=True,
    help="With --wait: give up after this many seconds (exit 8; the generation goes on).",
)
@click.option("--cancel-on-interrupt", is_flag=True, help="With --wait: Ctrl-C cancels the generation without asking.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the generation's id.")
@json_option
@click.pass_obj
def generate(
    state: State,
    prompt: str,
    model: str | None,
    size: tuple[int, int] | None,
    kind: str | None,
    priority: str | None,
    webhook_url: str | None,
    wait: bool,
    out_dir: Path | None,
    timeout: float,
    cancel_on_interrupt: bool,
    quiet: bool,
) -> None:
    """Create a generation from PROMPT; with --wait, follow it to its end.

    While waiting, a terminal shows the status and the time so far (and,
    while it is queued, its place and when it should start; once running,
    its percent and when it should be done) and says what
    happened: reconnecting (why, which try), reconnected, re-dispatched,
    progress reset, queued again; elsewhere each is a plain line on stderr.
    A lost connection is retried for `leo --reconnect-timeout` seconds
    (default 60), then exit 5. --out DIR waits too, then saves the files in
    DIR.

    Ctrl-C stops the display and offers to cancel (--cancel-on-interrupt:
    cancels without asking; no terminal: leaves it running), exit 130. If
    the generation ended meanwhile, its end is shown instead, as without
    Ctrl-C (COMPLETE: exit 0, with its files).

    \b
    Examples:
      leo generate "a lighthouse at dusk" --model sdxl --size 1024x768 --wait
      leo generate "a whale breaching" --kind video --out ./videos
      leo generate "a red fox in snow" --webhook https://example.com/hooks/leo
      ID=$(leo generate "a kite over the dunes" -q)
      leo generate "a blue whale" --wait --json > whale.json
    """
    out = state.output()
    width, height = size or (None, None)
    show = _shower(out, quiet)
    client = state.client()
    if not wait and out_dir is None:
        show(
            client.create(
                prompt, model=model, width=width, height=height, webhook_url=webhook_url, kind=kind, priority=priority
            )
        )
        return
    last: Generation | None = None
    with ProgressDisplay(
        out, live=out.err.is_terminal, lines=None if out.json or quiet else out.note, notes=out.note
    ) as display:

        def update(generation: Generation) -> None:
            nonlocal last
            last = generation
            display.update(generation)

        def finish(generation: Generation) -> None:
            display.stop()
            show(generation)
            _save(state, out, generation, out_dir)

        waiting = Waiting(
            lambda: client.generate(
                prompt,
                model=model,
                width=width,
                height=height,
                webhook_url=webhook_url,
                kind=kind,
                priority=priority,
                timeout=timeout,
                on_update=update,
                on_connection=display.connection,
            )
        )
        try:
            waiting.join()
        except KeyboardInterrupt:
            display.stop()
            if last is None:
                raise
            interrupted(client, out, waiting, last.id, cancel=cancel_on_interrupt, show=finish)
            return
        follow(waiting, finish)


def _shower(out: Output, quiet: bool) -> Callable[[Generation], None]:
    """How a command shows a generation: its id only (--quiet), JSON, or in full."""
    if quiet and not out.json:
        return lambda generation: out.line(generation.id)
    return out.generation


@click.command()
@click.argument("generation_id", metavar="ID")
@OUT_OPTION
@json_option
@click.pass_obj
def get(state: State, generation_id: str, out_dir: Path | None) -> None:
    """Show a generation: status, prompt, files once COMPLETE (--out DIR saves them).

    \b
    Examples:
      leo get 3fa85f64-5717-4562-b3fc-2c963f66afa6
      leo get 3fa85f64-5717-4562-b3fc-2c963f66afa6 --out ./images
      leo get 3fa85f64-5717-4562-b3fc-2c963f66afa6 --json
    """
    out = state.output()
    generation = state.client().get(generation_id)
    out.generation(generation)
    _save(state, out, generation, out_dir)


@click.command(name="list")
@click.option("--status", type=click.Choice([s.value for s in Status if s is not Status.UNSPECIFIED]))
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    metavar="N",
    default=20,
    show_default=True,
    help="Show at most this many (0: all; pages are fetched as needed).",
)
@json_option
@click.pass_obj
def list_generations(state: State, status: str | None, limit: int) -> None:
    """List your generations, newest first.

    \b
    Examples:
      leo list
      leo list --status failed --limit 50
      leo list --limit 0 --json
    """
    page_size = min(limit, MAX_PAGE_SIZE) if limit else MAX_PAGE_SIZE
    generations = state.client().list(status=status, page_size=page_size)
    state.output().generations(itertools.islice(generations, limit or None))


@click.command()
@click.argument("generation_id", metavar="ID")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Give up after this many seconds (exit 8).",
)
@json_option
@click.pass_obj
def watch(state: State, generation_id: str, timeout: float | None) -> None:
    """Follow a generation until it ends, showing each new state.

    With --json, one JSON document per state, a line each (JSON Lines),
    shaped as WatchGeneration's messages. Exits 1 if it ends FAILED or
    CANCELLED. A lost connection is retried for `leo --reconnect-timeout`
    seconds (default 60), each try and its reason on stderr (or on the live
    line), then exit 5; an API that never answered exits 5 as any command
    does.

    \b
    Examples:
      leo watch 3fa85f64-5717-4562-b3fc-2c963f66afa6
      leo watch 3fa85f64-5717-4562-b3fc-2c963f66afa6 --json | tail -n 1
    """
    out = state.output()
    client = state.client()
    live = out.out.is_terminal and not out.json
    with ProgressDisplay(out, live=live, lines=None if live or out.json else out.line, notes=out.note) as display:

        def update(generation: Generation) -> None:
            if out.json:
                out.document({"generation": generation.to_dict()}, compact=True)
            display.update(generation)

        def finish(generation: Generation) -> None:
            display.stop()
            if not out.json:
                out.generation(generation)

        follow(
            Waiting(
                lambda: client.wait(generation_id, timeout=timeout, on_update=update, on_connection=display.connection)
            ),
            finish,
        )


@click.command()
@click.argument("generation_id", metavar="ID")
@json_option
@click.pass_obj
def cancel(state: State, generation_id: str) -> None:
    """Cancel a PENDING generation (a finished one exits 7).

    \b
    Example:
      leo cancel 3fa85f64-5717-4562-b3fc-2c963f66afa6
    """
    state.output().generation(state.client().cancel(generation_id))


@click.group(name="webhook-secret")
def webhook_secret() -> None:
    """The secret that signs your webhooks."""


@webhook_secret.command()
@json_option
@click.pass_obj
def rotate(state: State) -> None:
    """Make a new webhook signing secret and print it (shown only now).

    The previous secret stops signing at once. Webhooks are signed as
    Standard Webhooks say (webhook-id, webhook-timestamp, webhook-signature).

    \b
    Example:
      leo webhook-secret rotate
    """
    secret = state.client().rotate_webhook_secret()
    out = state.output()
    if out.json:
        out.document({"secret": secret})
    else:
        out.line(secret)
        out.note("webhook secret: shown only now; the previous one no longer signs.")
