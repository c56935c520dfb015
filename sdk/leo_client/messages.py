"""Request messages from the client's typed arguments (one place for both clients)."""

from __future__ import annotations

import uuid

from leo.generation.v1 import generation_pb2
from leo_client.types import Kind, Model, Priority, Status


def create_request(
    prompt: str,
    *,
    model: Model | str | None,
    width: int | None,
    height: int | None,
    webhook_url: str | None,
    request_id: str | None,
    kind: Kind | str | None = None,
    priority: Priority | str | None = None,
) -> generation_pb2.CreateGenerationRequest:
    """A CreateGeneration request; without a request_id it gets a new one, so that
    retries of this one request (and only they) return the same generation."""
    return generation_pb2.CreateGenerationRequest(
        prompt=prompt,
        model=Model(model).to_proto() if model else generation_pb2.MODEL_UNSPECIFIED,
        width=width or 0,
        height=height or 0,
        webhook_url=webhook_url or "",
        request_id=request_id or str(uuid.uuid4()),
        kind=Kind(kind).to_proto() if kind else generation_pb2.KIND_UNSPECIFIED,
        priority=Priority(priority).to_proto() if priority else generation_pb2.PRIORITY_UNSPECIFIED,
    )


def asset_request(generation_id: str, index: int) -> generation_pb2.GetGenerationAssetRequest:
    """A GetGenerationAsset request made with the client's key (no signature)."""
    return generation_pb2.GetGenerationAssetRequest(generation_id=generation_id, index=index)


def list_request(
    *, status: Status | str | None, page_size: int | None, page_token: str
) -> generation_pb2.ListGenerationsRequest:
    """One page's ListGenerations request."""
    return generation_pb2.ListGenerationsRequest(
        status=Status(status).to_proto() if status else generation_pb2.STATUS_UNSPECIFIED,
        page_size=page_size or 0,
        page_token=page_token,
    )
