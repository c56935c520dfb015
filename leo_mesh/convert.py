"""Generation rows in the public wire format: API messages and webhook bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from leo.generation.v1 import generation_pb2
from leo_mesh.db.rows import GenerationRow
from leo_mesh.rules import Model, Status

STATUSES = {
    Status.PENDING: generation_pb2.STATUS_PENDING,
    Status.COMPLETE: generation_pb2.STATUS_COMPLETE,
    Status.FAILED: generation_pb2.STATUS_FAILED,
    Status.CANCELLED: generation_pb2.STATUS_CANCELLED,
}
MODELS = {Model.SD: generation_pb2.MODEL_SD, Model.SDXL: generation_pb2.MODEL_SDXL}

WEBHOOK_EVENT_TYPES = {
    Status.COMPLETE: "generation.completed",
    Status.FAILED: "generation.failed",
    Status.CANCELLED: "generation.cancelled",
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _timestamp(value: datetime | None) -> Timestamp | None:
    """In integers (Timestamp.FromDatetime costs five times as much; a list page has sixty)."""
    if value is None:
        return None
    since = value - _EPOCH
    return Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000)


def to_proto(row: GenerationRow) -> generation_pb2.Generation:
    complete = row.status is Status.COMPLETE
    return generation_pb2.Generation(
        generation_id=str(row.generation_id),
        status=STATUSES[row.status],
        prompt=row.prompt,
        model=MODELS[row.model],
        width=row.width,
        height=row.height,
        images=[generation_pb2.Image(url=i.url, width=i.width, height=i.height) for i in row.images]
        if complete
        else [],
        attempts=row.attempts,
        failure_reason=row.failure_reason or "",
        create_time=_timestamp(row.created_at),
        update_time=_timestamp(row.updated_at),
        complete_time=_timestamp(row.completed_at),
        webhook_url=row.webhook_url or "",
    )


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_body(row: GenerationRow) -> str:
    """The body every attempt of a final generation's webhook sends: compact
    JSON with the event type, when it happened, and the generation as the
    public API shows it (proto3 JSON)."""
    if row.status not in WEBHOOK_EVENT_TYPES or row.completed_at is None:
        raise ValueError("a webhook needs a generation in a final state")
    data = json_format.MessageToDict(to_proto(row), always_print_fields_with_no_presence=True)
    event = {"type": WEBHOOK_EVENT_TYPES[row.status], "timestamp": _rfc3339(row.completed_at), "data": data}
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
