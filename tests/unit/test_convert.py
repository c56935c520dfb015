"""Rows as API messages and webhook bodies, and which errors are worth retrying (pure logic)."""

import json
import uuid
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from leo.generation.v1 import generation_pb2
from leo_mesh.convert import to_proto, webhook_body
from leo_mesh.db.rows import GenerationRow
from leo_mesh.rules import RETRYABLE_CODES, Image, Model
from leo_mesh.rules import Status as GenerationStatus

NOW = datetime(2026, 11, 28, 12, 0, 0, 123000, tzinfo=UTC)
IMAGES = (Image("https://img/1.png", 512, 512),)


def row(status: GenerationStatus, **fields) -> GenerationRow:
    values = dict(
        id=uuid.uuid4(),
        generation_id=uuid.uuid4(),
        owner="o",
        prompt="p",
        model=Model.SD,
        width=512,
        height=512,
        status=status,
        images=IMAGES,
        attempts=2,
        failure_reason=None,
        created_at=NOW,
        updated_at=NOW,
        completed_at=None,
        webhook_url=None,
    )
    return GenerationRow(**{**values, **fields})


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
        generation_pb2.MODEL_SD,
        512,
        2,
        "boom",
    )
    assert message.create_time.ToDatetime(UTC) == NOW and message.HasField("complete_time")
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
    assert (code.name in RETRYABLE_CODES) is retry


def test_webhook_body_is_the_event_with_the_generation_as_the_api_shows_it():
    done = row(GenerationStatus.COMPLETE, completed_at=NOW)
    body = json.loads(webhook_body(done))
    assert body["type"] == "generation.completed" and body["timestamp"] == "2026-11-28T12:00:00.123Z"
    assert body["data"]["generationId"] == str(done.generation_id) and body["data"]["status"] == "STATUS_COMPLETE"
    with pytest.raises(ValueError):
        webhook_body(row(GenerationStatus.PENDING))


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.timezones()))
def test_timestamps_are_what_protobuf_itself_makes(value):
    expected = Timestamp()
    expected.FromDatetime(value)
    assert to_proto(row(GenerationStatus.PENDING, created_at=value)).create_time == expected
