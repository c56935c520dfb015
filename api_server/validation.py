"""Checks on CreateGeneration input; each rule names its field."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from leo.generation.v1 import generation_pb2

from leo_mesh.db.models import PROMPT_MAX_LENGTH, CoreModel
from leo_mesh.status import FieldViolation, invalid_argument

DEFAULT_MODEL = CoreModel.SDXL
DEFAULT_SIDE = 1024
MIN_SIDE, MAX_SIDE, SIDE_STEP = 64, 2048, 8

MODELS = {generation_pb2.MODEL_SD: CoreModel.SD, generation_pb2.MODEL_SDXL: CoreModel.SDXL}


@dataclass(frozen=True)
class NewGeneration:
    prompt: str
    model: CoreModel
    width: int
    height: int


def _side(field: str, value: int, violations: list[FieldViolation]) -> int:
    if value == 0:
        return DEFAULT_SIDE
    if not MIN_SIDE <= value <= MAX_SIDE or value % SIDE_STEP:
        violations.append(
            FieldViolation(field, f"must be a multiple of {SIDE_STEP} from {MIN_SIDE} to {MAX_SIDE} (or unset for {DEFAULT_SIDE})")
        )
    return value


def validate_create(request: generation_pb2.CreateGenerationRequest) -> NewGeneration:
    """The generation to create, or INVALID_ARGUMENT listing every bad field."""
    violations: list[FieldViolation] = []
    prompt = request.prompt
    if not prompt.strip():
        violations.append(FieldViolation("prompt", "is required and must not be blank"))
    elif len(prompt) > PROMPT_MAX_LENGTH:
        violations.append(FieldViolation("prompt", f"must be at most {PROMPT_MAX_LENGTH} characters (got {len(prompt)})"))
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
    if violations:
        raise invalid_argument(violations)
    return NewGeneration(prompt=prompt, model=model, width=width, height=height)


def parse_generation_id(value: str, field: str = "generation_id") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise invalid_argument([FieldViolation(field, "must be a UUID")]) from None
