"""CallbackService: the AI backend reports results here (the seed's Lambda)."""

from __future__ import annotations

import logging
import uuid

import grpc
from leo.callback.v1 import callback_pb2, callback_pb2_grpc

from leo_mesh.db.generations import CompletionOutcome, GenerationStore, Result
from leo_mesh.status import FieldViolation, RpcError, invalid_argument, not_found

log = logging.getLogger("callback_server.service")

MAX_REASON_LENGTH = 2000


def parse_result(request: callback_pb2.CompleteGenerationRequest) -> tuple[uuid.UUID, Result]:
    violations: list[FieldViolation] = []
    try:
        generation_id = uuid.UUID(request.generation_id)
    except ValueError:
        violations.append(FieldViolation("generation_id", "must be a UUID"))
    kind = request.WhichOneof("result")
    result = None
    if kind == "completed":
        images = request.completed.images
        if not images:
            violations.append(FieldViolation("completed.images", "must hold at least one image"))
        for index, image in enumerate(images):
            if not image.url.startswith(("https://", "http://")):
                violations.append(FieldViolation(f"completed.images[{index}].url", "must be an http(s) URL"))
            if image.width <= 0 or image.height <= 0:
                violations.append(FieldViolation(f"completed.images[{index}]", "width and height must be positive"))
        result = Result(images=[{"url": i.url, "width": i.width, "height": i.height} for i in images])
    elif kind == "failure_reason":
        reason = request.failure_reason.strip()
        if not reason or len(reason) > MAX_REASON_LENGTH:
            violations.append(FieldViolation("failure_reason", f"must be 1 to {MAX_REASON_LENGTH} characters"))
        result = Result(failure_reason=reason)
    else:
        violations.append(FieldViolation("result", "one of completed or failure_reason is required"))
    if violations:
        raise invalid_argument(violations)
    return generation_id, result


class CallbackService(callback_pb2_grpc.CallbackServiceServicer):
    def __init__(self, store: GenerationStore) -> None:
        self._store = store

    async def CompleteGeneration(self, request, context):
        generation_id, result = parse_result(request)
        outcome = await self._store.complete(generation_id, request.callback_token, result)
        log.info("completion", extra={"generation_id": str(generation_id), "outcome": outcome.value, "status": result.status.value})
        if outcome is CompletionOutcome.NOT_FOUND:
            raise not_found(f"generation {generation_id}")
        if outcome is CompletionOutcome.BAD_TOKEN:
            raise RpcError(grpc.StatusCode.UNAUTHENTICATED, "the callback token is missing or not the latest dispatch's")
        if outcome is CompletionOutcome.CONFLICT:
            raise RpcError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"generation {generation_id} already has another final result",
            )
        return callback_pb2.CompleteGenerationResponse()
