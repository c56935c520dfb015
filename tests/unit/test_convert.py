"""Rows as API messages and webhook bodies, and which errors are worth retrying (pure logic)."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from leo.generation.v1 import generation_pb2
from leo_mesh.convert import to_proto as to_proto_with
from leo_mesh.convert import webhook_body
from leo_mesh.db.rows import GenerationRow
from leo_mesh.media.links import AssetLinks
from leo_mesh.rules import RETRYABLE_CODES, Asset, Kind, Model, Progress
from leo_mesh.rules import Status as GenerationStatus
from leo_mesh.scheduling import Phase, Standing

NOW = datetime(2026, 11, 28, 12, 0, 0, 123000, tzinfo=UTC)
IMAGES = (Asset("g/0.png", "image/png", 512, 512, byte_size=1234),)
LINKS = AssetLinks(b"key", base_url="https://api.test/", ttl_s=3600, clock=lambda: NOW.timestamp())


def to_proto(row: GenerationRow, standing: Standing | None = None) -> generation_pb2.Generation:
    return to_proto_with(row, LINKS, standing)


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
        assets=IMAGES,
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
    done = row(GenerationStatus.COMPLETE)
    expires = LINKS.expiry()
    link = LINKS.url(done.generation_id, 0, expires)
    assert link.startswith(
        f"https://api.test/v1/generations/{done.generation_id}/assets/0?expires={expires}&signature="
    )
    assert [(i.url, i.width, i.height) for i in to_proto(done).images] == [(link, 512, 512)]
    (asset,) = to_proto(done).assets
    assert (asset.url, asset.content_type, asset.byte_size) == (link, "image/png", 1234)
    assert asset.url_expire_time.seconds == expires
    for status in (GenerationStatus.PENDING, GenerationStatus.FAILED, GenerationStatus.CANCELLED):
        assert not to_proto(row(status)).images and not to_proto(row(status)).assets


def test_a_video_has_assets_and_no_images():
    animation = Asset("g/0.webp", "image/webp", 512, 512, byte_size=99, duration_ms=2000, frame_count=16)
    message = to_proto(row(GenerationStatus.COMPLETE, kind=Kind.VIDEO, assets=(animation,)))
    assert message.kind == generation_pb2.KIND_VIDEO and not message.images
    (asset,) = message.assets
    assert (asset.content_type, asset.duration_ms, asset.frame_count) == ("image/webp", 2000, 16)


def test_a_file_from_before_the_media_store_keeps_its_url():
    legacy = Asset("", "image/png", 64, 64, url="https://images.leo.example/g/0.png")
    message = to_proto(row(GenerationStatus.COMPLETE, assets=(legacy,)))
    assert [i.url for i in message.images] == ["https://images.leo.example/g/0.png"]
    assert not message.assets[0].HasField("url_expire_time")


def test_links_stay_the_same_within_a_step_and_expire_at_least_a_lifetime_ahead():
    now = [NOW.timestamp()]
    links = AssetLinks(b"key", base_url="https://api.test", ttl_s=3600, clock=lambda: now[0])
    first = links.expiry()
    assert first >= now[0] + 3600 and first % 360 == 0
    now[0] += 1
    assert links.expiry() == first


def test_progress_shows_while_pending_and_is_100_once_complete():
    running = to_proto(row(GenerationStatus.PENDING, progress=Progress(percent=40), phase=Phase.RUNNING))
    assert running.progress == 40 and not running.HasField("queue_position")
    nothing = to_proto(row(GenerationStatus.PENDING))
    assert not nothing.HasField("progress") and not nothing.HasField("queue_position")
    assert to_proto(row(GenerationStatus.COMPLETE, progress=Progress(percent=90))).progress == 100
    for status in (GenerationStatus.FAILED, GenerationStatus.CANCELLED):
        assert not to_proto(row(status, progress=Progress(percent=90))).HasField("progress")


@pytest.mark.parametrize(
    "phase, shown",
    [
        (Phase.QUEUED, generation_pb2.PHASE_QUEUED),
        (Phase.STARTING, generation_pb2.PHASE_STARTING),
        (Phase.HELD, generation_pb2.PHASE_STARTING),  # waiting on its worker: about to run
        (Phase.RUNNING, generation_pb2.PHASE_RUNNING),
    ],
)
def test_a_pending_generation_shows_its_phase_and_a_final_one_none(phase, shown):
    assert to_proto(row(GenerationStatus.PENDING, phase=phase)).phase == shown
    assert to_proto(row(GenerationStatus.COMPLETE, phase=None)).phase == generation_pb2.PHASE_UNSPECIFIED


def test_a_queued_generation_shows_its_place_and_estimates_and_a_running_one_only_when_it_ends():
    start, end = NOW + timedelta(seconds=12), NOW + timedelta(seconds=18)
    standing = Standing(position=3, start=start, complete=end)
    queued = to_proto(row(GenerationStatus.PENDING, phase=Phase.QUEUED), standing)
    assert queued.queue_position == 3
    assert (queued.estimated_start_time.ToDatetime(UTC), queued.estimated_complete_time.ToDatetime(UTC)) == (start, end)
    running = to_proto(row(GenerationStatus.PENDING, phase=Phase.RUNNING, started_at=NOW), standing)
    assert not running.HasField("queue_position") and not running.HasField("estimated_start_time")
    assert running.estimated_complete_time.ToDatetime(UTC) == end and running.start_time.ToDatetime(UTC) == NOW
    done = to_proto(row(GenerationStatus.COMPLETE, phase=None, started_at=NOW, completed_at=end), standing)
    assert not done.HasField("estimated_complete_time") and done.start_time.ToDatetime(UTC) == NOW


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
    body = json.loads(webhook_body(done, LINKS))
    assert body["type"] == "generation.completed" and body["timestamp"] == "2026-11-28T12:00:00.123Z"
    assert body["data"]["generationId"] == str(done.generation_id) and body["data"]["status"] == "STATUS_COMPLETE"
    assert body["data"]["assets"][0]["url"] == to_proto(done).assets[0].url
    with pytest.raises(ValueError):
        webhook_body(row(GenerationStatus.PENDING), LINKS)


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.timezones()))
def test_timestamps_are_what_protobuf_itself_makes(value):
    expected = Timestamp()
    expected.FromDatetime(value)
    assert to_proto(row(GenerationStatus.PENDING, created_at=value)).create_time == expected
