"""Generation rows in the public wire format: API messages and webhook bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from leo.generation.v1 import generation_pb2
from leo_mesh import rules, wire
from leo_mesh.db.rows import GenerationRow
from leo_mesh.media.links import AssetLinks
from leo_mesh.rules import Asset, Kind, Status
from leo_mesh.scheduling import Phase, Standing, shown_phase

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


def _set_time(field: Timestamp, value: datetime) -> None:
    since = value - _EPOCH
    field.seconds, field.nanos = since.days * 86_400 + since.seconds, since.microseconds * 1000


def _asset(row: GenerationRow, index: int, asset: Asset, links: AssetLinks, expires: int) -> generation_pb2.Asset:
    """A stored file with its signed link; a file from before the media store with the URL it had."""
    message = generation_pb2.Asset(
        url=asset.url or links.url(row.generation_id, index, expires),
        content_type=asset.content_type,
        width=asset.width,
        height=asset.height,
        byte_size=asset.byte_size,
        duration_ms=asset.duration_ms,
        frame_count=asset.frame_count,
    )
    if asset.key:
        message.url_expire_time.FromSeconds(expires)
    return message


def to_proto(row: GenerationRow, links: AssetLinks, standing: Standing | None = None) -> generation_pb2.Generation:
    """The generation as the API shows it; `links` signs its files' links,
    `standing` is where it stands in the queue (api_server.queue_view)."""
    expires = links.expiry()
    assets = (
        [_asset(row, index, asset, links, expires) for index, asset in enumerate(row.assets)]
        if row.status is Status.COMPLETE
        else []
    )
    generation = generation_pb2.Generation(
        generation_id=str(row.generation_id),
        status=wire.STATUS.to_wire(row.status),
        prompt=row.prompt,
        model=wire.MODEL.to_wire(row.model),
        width=row.width,
        height=row.height,
        images=[generation_pb2.Image(url=a.url, width=a.width, height=a.height) for a in assets]
        if row.kind is Kind.IMAGE
        else [],
        attempts=row.attempts,
        failure_reason=row.failure_reason or "",
        create_time=_timestamp(row.created_at),
        update_time=_timestamp(row.updated_at),
        complete_time=_timestamp(row.completed_at),
        webhook_url=row.webhook_url or "",
        kind=wire.KIND.to_wire(row.kind),
        assets=assets,
        priority=wire.PRIORITY.to_wire(row.priority),
        start_time=_timestamp(row.started_at),
    )
    progress = rules.shown_progress(row.status, row.progress)
    if progress.percent is not None:
        generation.progress = progress.percent
    if row.status is Status.PENDING and row.phase is not None:
        generation.phase = wire.PHASE.to_wire(shown_phase(row.phase))
        if standing is not None:
            if standing.position is not None and row.phase is Phase.QUEUED:
                generation.queue_position = standing.position
            if standing.start is not None and row.phase is Phase.QUEUED:
                _set_time(generation.estimated_start_time, standing.start)
            if standing.complete is not None:
                _set_time(generation.estimated_complete_time, standing.complete)
    return generation


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_body(row: GenerationRow, links: AssetLinks) -> str:
    """The body every attempt of a final generation's webhook sends: compact
    JSON with the event type, when it happened, and the generation as the
    public API shows it (proto3 JSON; its links expire as the API's do,
    counted from when the generation became final)."""
    if row.status not in WEBHOOK_EVENT_TYPES or row.completed_at is None:
        raise ValueError("a webhook needs a generation in a final state")
    data = json_format.MessageToDict(to_proto(row, links), always_print_fields_with_no_presence=True)
    event = {"type": WEBHOOK_EVENT_TYPES[row.status], "timestamp": _rfc3339(row.completed_at), "data": data}
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
