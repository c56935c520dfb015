"""leo_client's typed values: Generation from the wire message, JSON as the HTTP API writes it,
and the progress fields the message is due to gain (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

from leo.generation.v1 import generation_pb2
from leo_client import Generation, Image, Model, Status
from leo_client.types import PERCENT_FIELD, QUEUE_POSITION_FIELD

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
    assert generation.queue_position is None and generation.percent is None


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


def _add_with_dependencies(pool: descriptor_pool.DescriptorPool, file, added: set[str]) -> None:
    for dependency in file.dependencies:
        _add_with_dependencies(pool, dependency, added)
    if file.name not in added:
        added.add(file.name)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        pool.Add(proto)


def generation_with_progress_fields(*, presence: bool) -> type:
    """Today's Generation message plus the progress fields, as the contract will have them."""
    pool = descriptor_pool.DescriptorPool()
    for dependency in generation_pb2.DESCRIPTOR.dependencies:
        _add_with_dependencies(pool, dependency, set())
    file = descriptor_pb2.FileDescriptorProto()
    generation_pb2.DESCRIPTOR.CopyToProto(file)
    msg = next(m for m in file.message_type if m.name == "Generation")
    kinds = {QUEUE_POSITION_FIELD: "TYPE_INT32", PERCENT_FIELD: "TYPE_FLOAT"}
    for number, (name, kind) in enumerate(kinds.items(), start=100):
        field = msg.field.add(name=name, number=number, type=descriptor_pb2.FieldDescriptorProto.Type.Value(kind))
        if presence:
            field.proto3_optional = True
            msg.oneof_decl.add(name=f"_{name}")
            field.oneof_index = len(msg.oneof_decl) - 1
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("leo.generation.v1.Generation"))


@pytest.mark.parametrize("presence", [True, False])
def test_progress_fields_are_read_once_the_message_has_them(presence):
    kind = generation_with_progress_fields(presence=presence)
    reported = Generation.from_proto(kind(generation_id="g", **{QUEUE_POSITION_FIELD: 3, PERCENT_FIELD: 42.5}))
    assert reported.status is Status.UNSPECIFIED
    assert reported.queue_position == 3 and reported.percent == 42.5
    silent = Generation.from_proto(kind(generation_id="g"))
    assert silent.queue_position is None and silent.percent is None
