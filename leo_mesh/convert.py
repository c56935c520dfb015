"""Database rows as API messages."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from leo.generation.v1 import generation_pb2

from leo_mesh.db.models import CoreModel, Generation, GenerationStatus

STATUSES = {
    GenerationStatus.PENDING: generation_pb2.STATUS_PENDING,
    GenerationStatus.COMPLETE: generation_pb2.STATUS_COMPLETE,
    GenerationStatus.FAILED: generation_pb2.STATUS_FAILED,
    GenerationStatus.CANCELLED: generation_pb2.STATUS_CANCELLED,
}
MODELS = {CoreModel.SD: generation_pb2.MODEL_SD, CoreModel.SDXL: generation_pb2.MODEL_SDXL}


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def to_proto(row: Generation) -> generation_pb2.Generation:
    complete = row.status is GenerationStatus.COMPLETE
    return generation_pb2.Generation(
        generation_id=str(row.generation_id),
        status=STATUSES[row.status],
        prompt=row.prompt,
        model=MODELS[row.core_model],
        width=row.image_width,
        height=row.image_height,
        images=[generation_pb2.Image(**image) for image in row.images] if complete else [],
        attempts=row.attempts,
        failure_reason=row.failure_reason or "",
        create_time=_timestamp(row.created_at),
        update_time=_timestamp(row.updated_at),
        complete_time=_timestamp(row.completed_at),
        webhook_url=row.webhook_url or "",
    )
