"""Generation rows as plain values, and the SELECT list that makes them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leo_mesh.rules import NO_PROGRESS, Asset, Kind, Model, Progress, Result, Status

# Every column a reader of a generation needs, in GenerationRow's order.
COLUMNS = (
    'id, "generationId", owner, status::text, prompt, "coreModel"::text, "imageWidth", "imageHeight", images,'
    ' "failureReason", attempts, "createdAt", "updatedAt", "completedAt", "webhookUrl", kind::text,'
    ' "queuePosition", progress'
)


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


def _row(values: Sequence[Any]) -> GenerationRow:
    (id_, generation_id, owner, status, prompt, model, width, height, images, reason, attempts, *rest) = values
    created_at, updated_at, completed_at, url, kind, queue_position, percent = rest
    return GenerationRow(
        id=id_,
        generation_id=generation_id,
        owner=owner,
        status=Status(status),
        prompt=prompt,
        model=Model(model),
        width=width,
        height=height,
        assets=tuple(_asset(entry) for entry in images),
        failure_reason=reason,
        attempts=attempts,
        created_at=created_at,
        updated_at=updated_at,
        completed_at=completed_at,
        webhook_url=url,
        kind=Kind(kind),
        progress=Progress(queue_position, percent),
    )


def generation_rows(cursor: Any) -> Callable[[Sequence[Any]], GenerationRow]:
    """psycopg row factory for a query that selects COLUMNS first."""
    return _row
