"""Generation rows as plain values, and the SELECT list that makes them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leo_mesh.rules import Image, Model, Result, Status

# Every column a reader of a generation needs, in GenerationRow's order.
COLUMNS = (
    'id, "generationId", owner, status::text, prompt, "coreModel"::text, "imageWidth", "imageHeight", images,'
    ' "failureReason", attempts, "createdAt", "updatedAt", "completedAt", "webhookUrl"'
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
    images: tuple[Image, ...]
    failure_reason: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    webhook_url: str | None

    @property
    def result(self) -> Result:
        """The final result recorded (meaningful once COMPLETE or FAILED)."""
        if self.status is Status.COMPLETE:
            return Result(images=self.images)
        return Result(failure_reason=self.failure_reason)


def images_json(images: Sequence[Image]) -> list[dict[str, Any]]:
    """The `images` JSONB column's shape."""
    return [{"url": i.url, "width": i.width, "height": i.height} for i in images]


def _row(values: Sequence[Any]) -> GenerationRow:
    (id_, generation_id, owner, status, prompt, model, width, height, images, reason, attempts, *times, url) = values
    created_at, updated_at, completed_at = times
    return GenerationRow(
        id=id_,
        generation_id=generation_id,
        owner=owner,
        status=Status(status),
        prompt=prompt,
        model=Model(model),
        width=width,
        height=height,
        images=tuple(Image(i["url"], i["width"], i["height"]) for i in images),
        failure_reason=reason,
        attempts=attempts,
        created_at=created_at,
        updated_at=updated_at,
        completed_at=completed_at,
        webhook_url=url,
    )


def generation_rows(cursor: Any) -> Callable[[Sequence[Any]], GenerationRow]:
    """psycopg row factory for a query that selects COLUMNS first."""
    return _row
