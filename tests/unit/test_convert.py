"""Rows as API messages, and which errors are worth retrying (pure logic)."""

import uuid
from datetime import datetime, timezone

import grpc
import pytest
from leo.generation.v1 import generation_pb2

from leo_mesh.convert import to_proto
from leo_mesh.db.models import CoreModel, Generation, GenerationStatus
from leo_mesh.status import is_retryable

NOW = datetime(2026, 11, 28, 12, 0, 0, 123000, tzinfo=timezone.utc)
IMAGES = [{"url": "https://img/1.png", "width": 512, "height": 512}]


def row(status: GenerationStatus, **fields) -> Generation:
    values = dict(
        id=uuid.uuid4(), generation_id=uuid.uuid4(), prompt="p", core_model=CoreModel.SD, image_width=512,
        image_height=512, status=status, images=IMAGES, attempts=2, failure_reason=None, created_at=NOW,
        updated_at=NOW, completed_at=None, webhook_url=None,
    )
    return Generation(**{**values, **fields})


@pytest.mark.parametrize(
    "status, expected",
    [
        (GenerationStatus.PENDING, generation_pb2.STATUS_PENDING),
        (GenerationStatus.COMPLETE, generation_pb2.STATUS_COMPLETE),
        (GenerationStatus.FAILED, generation_pb2.STATUS_FAILED),
        (GenerationStatus.CANCELLED, generation_pb2.STATUS_CANCELLED),
    ],
)
def test_every_status_maps(status, expected):
    assert to_proto(row(status)).status == expected


def test_images_only_once_complete():
    assert [i.url for i in to_proto(row(GenerationStatus.COMPLETE)).images] == ["https://img/1.png"]
    for status in (GenerationStatus.PENDING, GenerationStatus.FAILED, GenerationStatus.CANCELLED):
        assert not to_proto(row(status)).images


def test_fields_and_times():
    message = to_proto(row(GenerationStatus.FAILED, failure_reason="boom", completed_at=NOW, webhook_url="https://h/x"))
    assert (message.model, message.width, message.attempts, message.failure_reason) == (
        generation_pb2.MODEL_SD, 512, 2, "boom",
    )
    assert message.create_time.ToDatetime(timezone.utc) == NOW and message.HasField("complete_time")
    assert message.webhook_url == "https://h/x"
    assert not to_proto(row(GenerationStatus.PENDING)).HasField("complete_time")


@pytest.mark.parametrize(
    "code, retry",
    [
        (grpc.StatusCode.UNAVAILABLE, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, True),
        (grpc.StatusCode.CANCELLED, True),
        (grpc.StatusCode.INVALID_ARGUMENT, False),
        (grpc.StatusCode.PERMISSION_DENIED, False),
        (grpc.StatusCode.UNAUTHENTICATED, False),
        (grpc.StatusCode.NOT_FOUND, False),
        (grpc.StatusCode.FAILED_PRECONDITION, False),
    ],
)
def test_retryable_codes(code, retry):
    assert is_retryable(code) is retry
