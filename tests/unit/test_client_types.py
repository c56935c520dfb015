"""leo_client's typed values: Generation from the wire message, JSON as the HTTP API writes it,
kinds, assets and progress (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf import timestamp_pb2

from leo.generation.v1 import generation_pb2
from leo_client import Asset, Generation, Image, Kind, Model, Status

CREATED = datetime(2026, 11, 28, 12, 0, 0, 123000, tzinfo=UTC)


def stamp(value: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


def message(**fields) -> generation_pb2.Generation:
    values = dict(
        generation_id="3fa85f64-5717-4562-b3fc-2c963f66afa6",
        status=generation_pb2.STATUS_COMPLETE,
        prompt="a lighthouse",
        model=generation_pb2.MODEL_SD,
        width=512,
        height=768,
        images=[generation_pb2.Image(url="https://img/0.png", width=512, height=768)],
        attempts=2,
        create_time=stamp(CREATED),
        update_time=stamp(CREATED),
        complete_time=stamp(CREATED),
    )
    return generation_pb2.Generation(**{**values, **fields})


def test_every_field_of_the_message_is_typed():
    generation = Generation.from_proto(message())
    assert generation.id == "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    assert generation.status is Status.COMPLETE and generation.done
    assert generation.model is Model.SD
    assert (generation.width, generation.height, generation.attempts) == (512, 768, 2)
    assert generation.images == (Image("https://img/0.png", 512, 768),)
    assert generation.create_time == CREATED == generation.complete_time
    assert generation.failure_reason is None and generation.webhook_url is None
    assert generation.queue_position is None and generation.progress is None


def test_unset_times_and_empty_strings_are_none():
    generation = Generation.from_proto(
        message(status=generation_pb2.STATUS_FAILED, failure_reason="model crashed", complete_time=None, images=[])
    )
    assert generation.complete_time is None
    assert generation.failure_reason == "model crashed"
    assert generation.status is Status.FAILED and generation.done


@pytest.mark.parametrize(
    "wire, status, final",
    [
        (generation_pb2.STATUS_PENDING, Status.PENDING, False),
        (generation_pb2.STATUS_COMPLETE, Status.COMPLETE, True),
        (generation_pb2.STATUS_FAILED, Status.FAILED, True),
        (generation_pb2.STATUS_CANCELLED, Status.CANCELLED, True),
        (99, Status.UNSPECIFIED, False),  # a status added after this client: keep waiting
    ],
)
def test_statuses(wire, status, final):
    assert Status.from_proto(wire) is status
    assert status.is_final is final


def test_status_and_model_round_trip_and_parse_names():
    for status in Status:
        assert Status.from_proto(status.to_proto()) is status
    for model in Model:
        assert Model.from_proto(model.to_proto()) is model
    assert Model("sdxl") is Model.SDXL and Status("complete") is Status.COMPLETE


def test_to_dict_is_the_http_apis_json():
    document = Generation.from_proto(message()).to_dict()
    assert document["generationId"] == "3fa85f64-5717-4562-b3fc-2c963f66afa6"
    assert document["status"] == "STATUS_COMPLETE" and document["model"] == "MODEL_SD"
    assert document["createTime"] == "2026-11-28T12:00:00.123Z"
    # Zero values are printed, as Envoy's transcoder prints them.
    assert document["failureReason"] == "" and document["webhookUrl"] == ""


def test_equal_states_compare_equal_whatever_the_message_object():
    assert Generation.from_proto(message()) == Generation.from_proto(message())
    assert Generation.from_proto(message()) != Generation.from_proto(message(attempts=3))


def test_progress_is_read_while_the_server_reports_it():
    queued = Generation.from_proto(message(status=generation_pb2.STATUS_PENDING, queue_position=3))
    assert queued.queue_position == 3 and queued.progress is None
    running = Generation.from_proto(message(status=generation_pb2.STATUS_PENDING, progress=0))
    assert running.progress == 0 and running.queue_position is None  # 0 is a report, not "unset"
    silent = Generation.from_proto(message(status=generation_pb2.STATUS_PENDING))
    assert silent.queue_position is None and silent.progress is None


def test_kind_and_assets():
    asset = generation_pb2.Asset(
        url="https://api/v1/generations/g/assets/0?expires=1&signature=s",
        content_type="image/webp",
        width=512,
        height=512,
        byte_size=12345,
        duration_ms=2000,
        frame_count=16,
    )
    asset.url_expire_time.FromDatetime(CREATED)
    generation = Generation.from_proto(message(kind=generation_pb2.KIND_VIDEO, assets=[asset], images=[]))
    assert generation.kind is Kind.VIDEO
    assert generation.assets == (Asset(0, asset.url, CREATED, "image/webp", 512, 512, 12345, 2000, 16),)
    assert Generation.from_proto(message()).kind is Kind.UNSPECIFIED  # a message without one
    for kind in Kind:
        assert Kind.from_proto(kind.to_proto()) is kind
    assert Kind("video") is Kind.VIDEO
