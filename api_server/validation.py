"""Checks on CreateGeneration input; each rule names its field."""

from __future__ import annotations

import uuid

from leo.generation.v1 import generation_pb2
from leo_mesh.db.generations import NewGeneration
from leo_mesh.db.models import PROMPT_MAX_LENGTH
from leo_mesh.errors import FieldViolation, InvalidArgument
from leo_mesh.rules import Model, Status

DEFAULT_MODEL = Model.SDXL
DEFAULT_SIDE = 1024
MIN_SIDE, MAX_SIDE, SIDE_STEP = 64, 2048, 8

MODELS = {generation_pb2.MODEL_SD: Model.SD, generation_pb2.MODEL_SDXL: Model.SDXL}

IDEMPOTENCY_HEADER = "idempotency-key"


def _side(field: str, value: int, violations: list[FieldViolation]) -> int:
    if value == 0:
        return DEFAULT_SIDE
    if not MIN_SIDE <= value <= MAX_SIDE or value % SIDE_STEP:
        violations.append(
            FieldViolation(
                field, f"must be a multiple of {SIDE_STEP} from {MIN_SIDE} to {MAX_SIDE} (or unset for {DEFAULT_SIDE})"
            )
        )
    return value


def _request_id(request_id: str, header: str | None, violations: list[FieldViolation]) -> uuid.UUID | None:
    """request_id and the Idempotency-Key header mean the same; both UUIDs."""
    parsed = {}
    for field, value in (("request_id", request_id), ("Idempotency-Key", header)):
        if value:
            try:
                parsed[field] = uuid.UUID(value)
            except ValueError:
                violations.append(FieldViolation(field, "must be a UUID"))
    if len(set(parsed.values())) > 1:
        violations.append(
            FieldViolation("request_id", "differs from the Idempotency-Key header; send one, or the same")
        )
    return next(iter(parsed.values()), None)


def validate_create(
    request: generation_pb2.CreateGenerationRequest, *, owner: str, idempotency_key: str | None = None
) -> NewGeneration:
    """The generation to create, or INVALID_ARGUMENT listing every bad field."""
    violations: list[FieldViolation] = []
    prompt = request.prompt
    if not prompt.strip():
        violations.append(FieldViolation("prompt", "is required and must not be blank"))
    elif len(prompt) > PROMPT_MAX_LENGTH:
        violations.append(
            FieldViolation("prompt", f"must be at most {PROMPT_MAX_LENGTH} characters (got {len(prompt)})")
        )
    elif "\x00" in prompt:
        violations.append(FieldViolation("prompt", "must not contain NUL characters"))

    if request.model == generation_pb2.MODEL_UNSPECIFIED:
        model = DEFAULT_MODEL
    elif request.model in MODELS:
        model = MODELS[request.model]
    else:
        violations.append(FieldViolation("model", "must be MODEL_SD or MODEL_SDXL"))
        model = DEFAULT_MODEL

    width = _side("width", request.width, violations)
    height = _side("height", request.height, violations)
    request_id = _request_id(request.request_id, idempotency_key, violations)
    if violations:
        raise InvalidArgument(violations)
    return NewGeneration(
        owner=owner,
        prompt=prompt,
        model=model,
        width=width,
        height=height,
        request_id=request_id,
        webhook_url=request.webhook_url or None,
    )


def parse_generation_id(value: str, field: str = "generation_id") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument([FieldViolation(field, "must be a UUID")]) from None


DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 20, 100

STATUS_FILTERS = {
    generation_pb2.STATUS_PENDING: Status.PENDING,
    generation_pb2.STATUS_COMPLETE: Status.COMPLETE,
    generation_pb2.STATUS_FAILED: Status.FAILED,
    generation_pb2.STATUS_CANCELLED: Status.CANCELLED,
}


def page_size(value: int) -> int:
    """Default 20; above 100 is taken as 100; negative is an error."""
    if value < 0:
        raise InvalidArgument([FieldViolation("page_size", "must not be negative")])
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def status_filter(value: int) -> Status | None:
    if value == generation_pb2.STATUS_UNSPECIFIED:
        return None
    if value not in STATUS_FILTERS:
        raise InvalidArgument([FieldViolation("status", "must be a known status")])
    return STATUS_FILTERS[value]
