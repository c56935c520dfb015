"""Generation rows as plain values, and the SELECT list that makes them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.cursor import BaseCursor
from psycopg.rows import RowMaker, dict_row

from leo_mesh.rules import NO_PROGRESS, Asset, Kind, Model, Progress, Result, Status
from leo_mesh.scheduling import Phase, Priority

# Every column a reader of a generation needs (read by name: generation_rows).
_SELECTED = (
    "id",
    '"generationId"',
    "owner",
    "status::text",
    "prompt",
    '"coreModel"::text',
    '"imageWidth"',
    '"imageHeight"',
    "images",
    '"failureReason"',
    "attempts",
    '"createdAt"',
    '"updatedAt"',
    '"completedAt"',
    '"webhookUrl"',
    "kind::text",
    "progress",
    "phase::text",
    "priority",
    '"startedAt"',
)
COLUMNS = ", ".join(_SELECTED)
# The names psycopg reports for them.
_COLUMN_NAMES = frozenset(column.split("::")[0].strip('"') for column in _SELECTED)


@dataclass(frozen=True, slots=True)
class GenerationRow:
    id: uuid.UUID
    generation_id: uuid.UUID
    owner: str | None
    status: Status
    prompt: str
    model: Model
    width: int
    height: int
    assets: tuple[Asset, ...]
    failure_reason: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    webhook_url: str | None
    kind: Kind = Kind.IMAGE
    # What the AI last reported of the current dispatch (cleared by each claim).
    progress: Progress = NO_PROGRESS
    # Where a PENDING generation is on its way (None once final).
    phase: Phase | None = Phase.QUEUED
    priority: Priority = Priority.NORMAL
    # When its latest attempt began to run on a worker.
    started_at: datetime | None = None

    @property
    def result(self) -> Result:
        """The final result recorded (meaningful once COMPLETE or FAILED)."""
        if self.status is Status.COMPLETE:
            return Result(assets=self.assets)
        return Result(failure_reason=self.failure_reason)


def images_json(assets: Sequence[Asset]) -> list[dict[str, Any]]:
    """The `images` JSONB column's shape: one object per asset. Entries
    written before the media store have only url, width and height."""
    return [
        {
            "key": a.key,
            "contentType": a.content_type,
            "width": a.width,
            "height": a.height,
            "byteSize": a.byte_size,
            "durationMs": a.duration_ms,
            "frameCount": a.frame_count,
        }
        | ({"url": a.url} if a.url else {})
        for a in assets
    ]


def _asset(entry: dict[str, Any]) -> Asset:
    return Asset(
        key=entry.get("key", ""),
        content_type=entry.get("contentType", "image/png"),
        width=entry["width"],
        height=entry["height"],
        byte_size=entry.get("byteSize", 0),
        duration_ms=entry.get("durationMs", 0),
        frame_count=entry.get("frameCount", 0),
        url=entry.get("url", ""),
    )


def _generation(record: Mapping[str, Any]) -> GenerationRow:
    """A GenerationRow from the columns of COLUMNS, by their names."""
    return GenerationRow(
        id=record["id"],
        generation_id=record["generationId"],
        owner=record["owner"],
        status=Status(record["status"]),
        prompt=record["prompt"],
        model=Model(record["coreModel"]),
        width=record["imageWidth"],
        height=record["imageHeight"],
        assets=tuple(_asset(entry) for entry in record["images"]),
        failure_reason=record["failureReason"],
        attempts=record["attempts"],
        created_at=record["createdAt"],
        updated_at=record["updatedAt"],
        completed_at=record["completedAt"],
        webhook_url=record["webhookUrl"],
        kind=Kind(record["kind"]),
        progress=Progress(record["progress"]),
        phase=Phase(record["phase"]) if record["phase"] else None,
        priority=Priority(record["priority"]),
        started_at=record["startedAt"],
    )


def generation_rows(cursor: BaseCursor[Any, Any]) -> RowMaker[GenerationRow]:
    """psycopg row factory for a query that selects COLUMNS (found by name)."""
    record = dict_row(cursor)

    def make(values: Sequence[Any]) -> GenerationRow:
        return _generation(record(values))

    return make


def generation_rows_with_extras(cursor: BaseCursor[Any, Any]) -> RowMaker[tuple[GenerationRow, dict[str, Any]]]:
    """psycopg row factory for a query that selects COLUMNS and more: each
    row's GenerationRow, and its other columns by name."""
    record = dict_row(cursor)

    def make(values: Sequence[Any]) -> tuple[GenerationRow, dict[str, Any]]:
        found = record(values)
        return _generation(found), {name: value for name, value in found.items() if name not in _COLUMN_NAMES}

    return make
