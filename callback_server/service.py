"""CallbackService: the AI backend reports results here (the seed's Lambda).

The token is checked before anything else: an unknown generation and a
wrong token get the same answer, so this port does not reveal which
generation ids exist.
"""

from __future__ import annotations

import logging
import uuid

from leo.callback.v1 import callback_pb2, callback_pb2_grpc
from leo_mesh import metrics
from leo_mesh.db.generations import GenerationStore
from leo_mesh.errors import CallbackTokenInvalid, FieldViolation, InvalidArgument, ResultConflict
from leo_mesh.rules import Completion, Image, Result
from leo_mesh.telemetry import tracing

log = logging.getLogger("callback_server.service")

MAX_REASON_LENGTH = 2000
MAX_URL_LENGTH = 2048


def _has_control_characters(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def parse_result(request: callback_pb2.CompleteGenerationRequest) -> tuple[uuid.UUID, Result]:
    violations: list[FieldViolation] = []
    generation_id = None
    try:
        generation_id = uuid.UUID(request.generation_id)
    except ValueError:
        violations.append(FieldViolation("generation_id", "must be a UUID"))
    kind = request.WhichOneof("result")
    result = Result()
    if kind == "completed":
        images = request.completed.images
        if not images:
            violations.append(FieldViolation("completed.images", "must hold at least one image"))
        for index, image in enumerate(images):
            url = image.url
            if not url.startswith(("https://", "http://")) or len(url) > MAX_URL_LENGTH:
                violations.append(
                    FieldViolation(
                        f"completed.images[{index}].url",
                        f"must be an http(s) URL of at most {MAX_URL_LENGTH} characters",
                    )
                )
            elif _has_control_characters(url) or " " in url:
                violations.append(
                    FieldViolation(
                        f"completed.images[{index}].url", "must not contain white space or control characters"
                    )
                )
            if image.width <= 0 or image.height <= 0:
                violations.append(FieldViolation(f"completed.images[{index}]", "width and height must be positive"))
        result = Result(images=tuple(Image(i.url, i.width, i.height) for i in images))
    elif kind == "failure_reason":
        reason = request.failure_reason.strip()
        if not reason or len(reason) > MAX_REASON_LENGTH:
            violations.append(FieldViolation("failure_reason", f"must be 1 to {MAX_REASON_LENGTH} characters"))
        elif "\x00" in reason:
            violations.append(FieldViolation("failure_reason", "must not contain NUL characters"))
        result = Result(failure_reason=reason)
    else:
        violations.append(FieldViolation("result", "one of completed or failure_reason is required"))
    if violations:
        raise InvalidArgument(violations)
    assert generation_id is not None
    return generation_id, result


class CallbackService(callback_pb2_grpc.CallbackServiceServicer):
    def __init__(self, store: GenerationStore) -> None:
        self._store = store

    async def CompleteGeneration(self, request, context):
        try:
            generation_id, result = parse_result(request)
        except InvalidArgument:
            metrics.CALLBACK_RESULTS.labels("invalid").inc()
            raise
        tracing.about_generation(str(generation_id))
        outcome = await self._store.complete(generation_id, request.callback_token, result)
        metrics.CALLBACK_RESULTS.labels(outcome.value).inc()
        log.info(
            "completion",
            extra={"generation_id": str(generation_id), "outcome": outcome.value, "status": result.status.value},
        )
        if outcome is Completion.BAD_TOKEN:
            raise CallbackTokenInvalid()
        if outcome is Completion.CONFLICT:
            raise ResultConflict(generation_id)
        return callback_pb2.CompleteGenerationResponse()
