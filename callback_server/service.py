"""CallbackService: the AI backend reports results (the seed's Lambda) and
where its jobs stand.

The token is checked before anything else: an unknown generation and a
wrong token get the same answer, so this port does not reveal which
generation ids exist. Results name stored files by key, under the
generation's own prefix; nothing else crosses this port.
"""

from __future__ import annotations

import logging
import re
import uuid

from leo.callback.v1 import callback_pb2, callback_pb2_grpc
from leo_mesh import metrics
from leo_mesh.batched_calls import answer_each
from leo_mesh.db.generations import GenerationStore
from leo_mesh.errors import CallbackTokenInvalid, FieldViolation, InvalidArgument, ResultConflict
from leo_mesh.media.store import generation_prefix, key_problem
from leo_mesh.rules import Asset, Completion, Progress, ProgressOutcome, Result
from leo_mesh.telemetry import tracing

log = logging.getLogger("callback_server.service")

MAX_REASON_LENGTH = 2000
MAX_REPORTS = 1000
MAX_RESULTS = 1000
_CONTENT_TYPE = re.compile(r"[a-z]+/[a-z0-9.+-]{1,100}")


def _generation_id(value: str, field: str, violations: list[FieldViolation]) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        violations.append(FieldViolation(field, "must be a UUID"))
        return None


def _assets(
    generation_id: uuid.UUID | None, stored: callback_pb2.StoredAssets, violations: list[FieldViolation]
) -> tuple[Asset, ...]:
    if not stored.assets:
        violations.append(FieldViolation("stored.assets", "must hold at least one asset"))
    for index, asset in enumerate(stored.assets):
        field = f"stored.assets[{index}]"
        problem = key_problem(asset.key)
        if problem:
            violations.append(FieldViolation(f"{field}.key", problem))
        elif generation_id is not None and not asset.key.startswith(generation_prefix(generation_id)):
            violations.append(FieldViolation(f"{field}.key", "must be under the generation's prefix <generation_id>/"))
        if not _CONTENT_TYPE.fullmatch(asset.content_type):
            violations.append(FieldViolation(f"{field}.content_type", "must be a media type such as image/png"))
        if asset.width <= 0 or asset.height <= 0 or asset.byte_size <= 0:
            violations.append(FieldViolation(field, "width, height and byte_size must be positive"))
        if asset.duration_ms < 0 or asset.frame_count < 0:
            violations.append(FieldViolation(field, "duration_ms and frame_count must not be negative"))
    return tuple(
        Asset(a.key, a.content_type, a.width, a.height, a.byte_size, a.duration_ms, a.frame_count)
        for a in stored.assets
    )


def parse_result(request: callback_pb2.CompleteGenerationRequest) -> tuple[uuid.UUID, Result]:
    violations: list[FieldViolation] = []
    generation_id = _generation_id(request.generation_id, "generation_id", violations)
    kind = request.WhichOneof("result")
    result = Result()
    if kind == "stored":
        result = Result(assets=_assets(generation_id, request.stored, violations))
    elif kind == "completed":
        violations.append(FieldViolation("completed", "URLs are not accepted: store the files and report their keys"))
    elif kind == "failure_reason":
        reason = request.failure_reason.strip()
        if not reason or len(reason) > MAX_REASON_LENGTH:
            violations.append(FieldViolation("failure_reason", f"must be 1 to {MAX_REASON_LENGTH} characters"))
        elif "\x00" in reason:
            violations.append(FieldViolation("failure_reason", "must not contain NUL characters"))
        result = Result(failure_reason=reason)
    else:
        violations.append(FieldViolation("result", "one of stored or failure_reason is required"))
    if violations:
        raise InvalidArgument(violations)
    assert generation_id is not None
    return generation_id, result


def parse_report(report: callback_pb2.ProgressReport) -> tuple[uuid.UUID, Progress]:
    violations: list[FieldViolation] = []
    generation_id = _generation_id(report.generation_id, "generation_id", violations)
    stage = report.WhichOneof("stage")
    if stage == "queue_position" and report.queue_position < 1:
        violations.append(FieldViolation("queue_position", "must be at least 1"))
    elif stage == "percent" and not 0 <= report.percent <= 100:
        violations.append(FieldViolation("percent", "must be from 0 to 100"))
    elif stage is None:
        violations.append(FieldViolation("stage", "one of queue_position or percent is required"))
    if violations:
        raise InvalidArgument(violations)
    assert generation_id is not None
    if stage == "queue_position":
        return generation_id, Progress(queue_position=report.queue_position)
    return generation_id, Progress(percent=report.percent)


class CallbackService(callback_pb2_grpc.CallbackServiceServicer):
    def __init__(self, store: GenerationStore) -> None:
        self._store = store

    async def CompleteGeneration(self, request, context):
        await self._complete(request)
        return callback_pb2.CompleteGenerationResponse()

    async def CompleteGenerations(self, request, context):
        if len(request.results) > MAX_RESULTS:
            raise InvalidArgument([FieldViolation("results", f"must hold at most {MAX_RESULTS} results")])
        # Together, so that they share the group commit.
        outcomes = await answer_each(
            request.results,
            self._complete,
            outcome=callback_pb2.CompleteGenerationOutcome,
            span_name="complete generation",
            traceparent=lambda result: result.traceparent,
        )
        return callback_pb2.CompleteGenerationsResponse(outcomes=outcomes)

    async def _complete(self, request: callback_pb2.CompleteGenerationRequest) -> None:
        """Record the result; raises the domain error that is its answer."""
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

    async def ReportProgress(self, request, context):
        if len(request.reports) > MAX_REPORTS:
            raise InvalidArgument([FieldViolation("reports", f"must hold at most {MAX_REPORTS} reports")])
        # Together, so that they share the group commit.
        outcomes = await answer_each(request.reports, self._report, outcome=callback_pb2.ProgressReportOutcome)
        return callback_pb2.ReportProgressResponse(outcomes=outcomes)

    async def _report(self, report: callback_pb2.ProgressReport) -> None:
        """Apply the report; raises the domain error that is its answer."""
        generation_id, progress = parse_report(report)
        if await self._store.report_progress(generation_id, report.callback_token, progress) is (
            ProgressOutcome.BAD_TOKEN
        ):
            raise CallbackTokenInvalid()
