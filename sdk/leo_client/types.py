"""What the client returns: generations and their images, as typed values.

Each `Generation` keeps the message it was made from (`proto`), so fields
added to the API after this client was written are still reachable, and
`to_dict()` gives the same JSON as the HTTP API.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, message, timestamp_pb2

from leo.generation.v1 import generation_pb2
from leo_contract.enums import WireEnum


class Status(enum.StrEnum):
    """Where a generation is in its life; PENDING is the only state that changes."""

    UNSPECIFIED = "unspecified"
    PENDING = "pending"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True for COMPLETE, FAILED and CANCELLED."""
        return self in _FINAL

    @classmethod
    def from_proto(cls, value: int) -> Status:
        """The status of a wire value; one this client does not know is UNSPECIFIED."""
        return _STATUS.from_wire(value, cls.UNSPECIFIED)

    def to_proto(self) -> generation_pb2.Status.ValueType:
        """The wire value of this status."""
        return _STATUS.to_wire(self)


class Kind(enum.StrEnum):
    """What a generation makes; `Kind("video")` parses a name."""

    UNSPECIFIED = "unspecified"
    IMAGE = "image"
    VIDEO = "video"

    @classmethod
    def from_proto(cls, value: int) -> Kind:
        """The kind of a wire value; one this client does not know is UNSPECIFIED."""
        return _KIND.from_wire(value, cls.UNSPECIFIED)

    def to_proto(self) -> generation_pb2.Kind.ValueType:
        """The wire value of this kind."""
        return _KIND.to_wire(self)


class Model(enum.StrEnum):
    """Models the AI backend can run; `Model("sdxl")` parses a name."""

    UNSPECIFIED = "unspecified"
    SD = "sd"
    SDXL = "sdxl"

    @classmethod
    def from_proto(cls, value: int) -> Model:
        """The model of a wire value; one this client does not know is UNSPECIFIED."""
        return _MODEL.from_wire(value, cls.UNSPECIFIED)

    def to_proto(self) -> generation_pb2.Model.ValueType:
        """The wire value of this model."""
        return _MODEL.to_wire(self)


class Phase(enum.StrEnum):
    """Where a PENDING generation is on its way: QUEUED in the mesh's queue,
    STARTING on an AI worker, RUNNING there; UNSPECIFIED once final."""

    UNSPECIFIED = "unspecified"
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"

    @classmethod
    def from_proto(cls, value: int) -> Phase:
        """The phase of a wire value; one this client does not know is UNSPECIFIED."""
        return _PHASE.from_wire(value, cls.UNSPECIFIED)


class Priority(enum.StrEnum):
    """How soon a generation runs against the others waiting; `Priority("high")` parses a name."""

    UNSPECIFIED = "unspecified"
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"

    @classmethod
    def from_proto(cls, value: int) -> Priority:
        """The priority of a wire value; one this client does not know is UNSPECIFIED."""
        return _PRIORITY.from_wire(value, cls.UNSPECIFIED)

    def to_proto(self) -> generation_pb2.Priority.ValueType:
        """The wire value of this priority."""
        return _PRIORITY.to_wire(self)


_FINAL = frozenset({Status.COMPLETE, Status.FAILED, Status.CANCELLED})
_STATUS = WireEnum(Status, generation_pb2.Status)
_MODEL = WireEnum(Model, generation_pb2.Model)
_KIND = WireEnum(Kind, generation_pb2.Kind)
_PHASE = WireEnum(Phase, generation_pb2.Phase)
_PRIORITY = WireEnum(Priority, generation_pb2.Priority)


@dataclass(frozen=True)
class Image:
    """One produced image, as `Generation.images` lists them (`assets` has more)."""

    url: str
    width: int
    height: int


@dataclass(frozen=True)
class Asset:
    """One produced file: an image, or a video generation's animation.
    `Client.download` saves it; `url` opens it without a key until `url_expire_time`."""

    index: int
    url: str
    url_expire_time: datetime | None
    content_type: str
    width: int
    height: int
    byte_size: int
    duration_ms: int
    """How long the animation plays; 0 for an image."""
    frame_count: int
    """How many frames the animation has; 0 for an image."""


@dataclass(frozen=True)
class Generation:
    """An image or video generation and, once COMPLETE, its images."""

    id: str
    status: Status
    prompt: str
    model: Model
    width: int
    height: int
    images: tuple[Image, ...]
    attempts: int
    """How many times the generation was sent to the AI backend."""
    failure_reason: str | None
    """Why it FAILED; None otherwise."""
    create_time: datetime | None
    update_time: datetime | None
    complete_time: datetime | None
    """When it reached its final state."""
    webhook_url: str | None
    kind: Kind = Kind.IMAGE
    assets: tuple[Asset, ...] = ()
    """The files, once COMPLETE."""
    queue_position: int | None = None
    """Its place in the mesh's queue (1: among the next to run) while QUEUED."""
    progress: int | None = None
    """Percent done (0 to 100) once the AI worker reports it; 100 once COMPLETE."""
    phase: Phase = Phase.UNSPECIFIED
    """QUEUED, STARTING or RUNNING while PENDING; UNSPECIFIED once final."""
    priority: Priority = Priority.UNSPECIFIED
    start_time: datetime | None = None
    """When it began to run on an AI worker (its latest attempt)."""
    estimated_start_time: datetime | None = None
    """While QUEUED: when it should start."""
    estimated_complete_time: datetime | None = None
    """While PENDING: when it should be complete."""
    proto: generation_pb2.Generation = field(default_factory=generation_pb2.Generation, repr=False, compare=False)
    """The message as received, with any field this client does not know yet."""

    @property
    def done(self) -> bool:
        """True once the generation is COMPLETE, FAILED or CANCELLED."""
        return self.status.is_final

    @classmethod
    def from_proto(cls, generation: generation_pb2.Generation) -> Generation:
        """The typed form of a Generation message."""
        return cls(
            id=generation.generation_id,
            status=Status.from_proto(generation.status),
            prompt=generation.prompt,
            model=Model.from_proto(generation.model),
            width=generation.width,
            height=generation.height,
            images=tuple(Image(url=i.url, width=i.width, height=i.height) for i in generation.images),
            attempts=generation.attempts,
            failure_reason=generation.failure_reason or None,
            create_time=_time(generation, "create_time"),
            update_time=_time(generation, "update_time"),
            complete_time=_time(generation, "complete_time"),
            webhook_url=generation.webhook_url or None,
            kind=Kind.from_proto(generation.kind),
            assets=tuple(
                Asset(
                    index=index,
                    url=a.url,
                    url_expire_time=_time(a, "url_expire_time"),
                    content_type=a.content_type,
                    width=a.width,
                    height=a.height,
                    byte_size=a.byte_size,
                    duration_ms=a.duration_ms,
                    frame_count=a.frame_count,
                )
                for index, a in enumerate(generation.assets)
            ),
            queue_position=generation.queue_position if generation.HasField("queue_position") else None,
            progress=generation.progress if generation.HasField("progress") else None,
            phase=Phase.from_proto(generation.phase),
            priority=Priority.from_proto(generation.priority),
            start_time=_time(generation, "start_time"),
            estimated_start_time=_time(generation, "estimated_start_time"),
            estimated_complete_time=_time(generation, "estimated_complete_time"),
            proto=generation,
        )

    def to_dict(self) -> dict[str, Any]:
        """The generation as the HTTP API writes it (lowerCamelCase names, enum names)."""
        return message_to_dict(self.proto)


def message_to_dict(msg: message.Message) -> dict[str, Any]:
    """A message as JSON the way the HTTP API (Envoy's transcoder) writes it."""
    return json_format.MessageToDict(msg, always_print_fields_with_no_presence=True)


def _time(msg: message.Message, name: str) -> datetime | None:
    if not msg.HasField(name):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(msg, name)
    return stamp.ToDatetime(tzinfo=UTC)
