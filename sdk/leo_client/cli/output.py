"""How `leo` writes: results on stdout, progress, notes and errors on stderr;
text for people (Rich; plain when not a terminal) or JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from leo_client.types import Asset, Generation, Phase, Status

STATUS_STYLES = {
    Status.PENDING: "yellow",
    Status.COMPLETE: "green",
    Status.FAILED: "red",
    Status.CANCELLED: "dim",
}


def console(*, stderr: bool = False) -> Console:
    """A console that styles only terminals and never wraps lines for a pipe or a file."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 10_000
    return Console(file=stream, width=width, markup=False, highlight=False, emoji=False)


def status_text(status: Status) -> Text:
    """The status name, coloured on a terminal."""
    return Text(status.name, style=STATUS_STYLES.get(status, ""))


def local_time(value: datetime | None) -> str:
    """A timestamp in the local time zone, to the second."""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else ""


def rfc3339(value: datetime | None) -> str | None:
    """A timestamp as JSON writes them (UTC, milliseconds, Z), as the HTTP API does."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if value else None


def standing(generation: Generation, now: datetime | None = None) -> str:
    """Where a PENDING generation stands, in words: queued (its place, when
    it should start), starting, or running (when it should be done)."""
    if generation.phase is Phase.UNSPECIFIED:
        return ""
    now = now or datetime.now(UTC)
    words = generation.phase.value
    if generation.phase is Phase.QUEUED:
        if generation.queue_position is not None:
            words += f", place {generation.queue_position}"
        if generation.estimated_start_time is not None:
            words += f", starts in ~{_seconds(generation.estimated_start_time - now)}"
    elif generation.estimated_complete_time is not None:
        words += f", done in ~{_seconds(generation.estimated_complete_time - now)}"
    return words


def _seconds(left: timedelta) -> str:
    seconds = max(0, round(left.total_seconds()))
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"


def state_line(generation: Generation) -> Text:
    """One line for a state of a generation: id, status and what the server reports of its progress."""
    line = Text.assemble(generation.id, "  ", status_text(generation.status))
    if generation.attempts:
        line.append(f"  attempt {generation.attempts}")
    if generation.phase is not Phase.UNSPECIFIED:
        line.append(f"  {standing(generation)}")
    if generation.progress is not None:
        line.append(f"  {generation.progress}%")
    if generation.failure_reason:
        line.append(f"  {generation.failure_reason}")
    return line


def _asset_facts(asset: Asset) -> str:
    """What a file is: type, size, and an animation's frames and length."""
    facts = f"{asset.content_type}  {asset.width}x{asset.height}  {asset.byte_size:,} bytes"
    if asset.frame_count:
        facts += f"  {asset.frame_count} frames, {asset.duration_ms / 1000:g} s"
    return facts


class Output:
    """The output of one command."""

    def __init__(self, *, as_json: bool = False) -> None:
        self.json = as_json
        self.out = console()
        self.err = console(stderr=True)

    def document(self, document: dict[str, Any], *, compact: bool = False) -> None:
        """One JSON document on stdout (compact: on one line, for a stream of them)."""
        text = (
            json.dumps(document, ensure_ascii=False, separators=(",", ":"))
            if compact
            else json.dumps(document, ensure_ascii=False, indent=2)
        )
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def note(self, text: str | Text) -> None:
        """A line for the person at the terminal, on stderr."""
        self.err.print(text, soft_wrap=True)

    def line(self, text: str | Text) -> None:
        """A line of the result, on stdout."""
        self.out.print(text, soft_wrap=True)

    def generation(self, generation: Generation) -> None:
        """A generation in full: JSON as GetGeneration's answer, or a table of its fields."""
        if self.json:
            self.document({"generation": generation.to_dict()})
            return
        rows: list[tuple[str, str | Text]] = [("id", generation.id), ("status", status_text(generation.status))]
        if generation.failure_reason:
            rows.append(("reason", generation.failure_reason))
        rows += [
            ("prompt", generation.prompt),
            ("model", f"{generation.model.name}  {generation.kind.name}  {generation.width}x{generation.height}"),
            ("attempts", str(generation.attempts)),
            ("created", local_time(generation.create_time)),
        ]
        if generation.complete_time:
            rows.append(("finished", local_time(generation.complete_time)))
        if generation.webhook_url:
            rows.append(("webhook", generation.webhook_url))
        rows += [
            ("files" if asset.index == 0 else "", f"{asset.url}  {_asset_facts(asset)}") for asset in generation.assets
        ]
        for name, value in rows:
            self.line(Text.assemble((f"{name:<10}", "bold"), value))

    def generations(self, generations: Iterable[Generation]) -> None:
        """A list of generations: JSON as ListGenerations' answer, or a table."""
        if self.json:
            self.document({"generations": [generation.to_dict() for generation in generations]})
            return
        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("ID", no_wrap=True)
        table.add_column("STATUS", no_wrap=True)
        table.add_column("MODEL", no_wrap=True)
        table.add_column("SIZE", no_wrap=True)
        table.add_column("CREATED", no_wrap=True)
        table.add_column("PROMPT", no_wrap=True, overflow="ellipsis", max_width=60)
        for generation in generations:
            table.add_row(
                generation.id,
                status_text(generation.status),
                generation.model.name,
                f"{generation.width}x{generation.height}",
                local_time(generation.create_time),
                Text(" ".join(generation.prompt.split())),
            )
        if table.row_count:
            self.table(table)
        else:
            self.note("no generations")

    def table(self, table: Table) -> None:
        """A table on stdout; for a pipe or a file, without the padding after each line's last cell."""
        if self.out.is_terminal:
            self.out.print(table)
            return
        with self.out.capture() as captured:
            self.out.print(table)
        sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
        sys.stdout.flush()
