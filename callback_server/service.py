"""CallbackService: the AI workers report results (the seed's Lambda), how
far their jobs are, and themselves (heartbeats: the pool's membership, each
worker's room, what it holds).

The token is checked before anything else: an unknown generation and a
wrong token get the same answer, so this port does not reveal which
generation ids exist. Results name stored files by key, under the
generation's own prefix; nothing else crosses this port.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta

from leo.callback.v1 import callback_pb2, callback_pb2_grpc
from leo_mesh import metrics, wire
from leo_mesh.batched_calls import answer_each
from leo_mesh.db.generations import GenerationStore
from leo_mesh.db.workers import Heartbeat, WorkerStore
from leo_mesh.errors import CallbackTokenInvalid, FieldViolation, InvalidArgument, ResultConflict
from leo_mesh.media.store import generation_prefix, key_problem
from leo_mesh.rules import Asset, Completion, Progress, ProgressOutcome, Result
from leo_mesh.scheduling import Reported
from leo_mesh.settings import QueueSettings
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
    if not 0 <= report.percent <= 100:
        violations.append(FieldViolation("percent", "must be from 0 to 100"))
    if violations:
        raise InvalidArgument(violations)
    assert generation_id is not None
    return generation_id, Progress(percent=report.percent)


MAX_HELD_JOBS = 10_000
# Heartbeats are numbered in the database's BIGINT.
MAX_HEARTBEAT = 2**63 - 1
# A job said to run for longer tells of a broken clock, not of its start
# (which, far enough back, no timestamp holds).
MAX_RUNNING_FOR_S = 366 * 86_400
_ADDRESS = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253}):[0-9]{1,5}")


def parse_heartbeat(request: callback_pb2.HeartbeatRequest) -> Heartbeat:
    """The heartbeat, or INVALID_ARGUMENT naming every bad field."""
    violations: list[FieldViolation] = []
    worker_id = _generation_id(request.worker_id, "worker_id", violations)
    if not _ADDRESS.fullmatch(request.address) or not 0 < int(request.address.rsplit(":", 1)[-1] or 0) < 65536:
        violations.append(FieldViolation("address", "must be host:port, where the mesh reaches the worker"))
    # A worker holds at most slots + prefetch jobs: all of them fit in a heartbeat.
    if not 1 <= request.slots <= MAX_HELD_JOBS:
        violations.append(FieldViolation("slots", f"must be from 1 to {MAX_HELD_JOBS}"))
    if request.prefetch < 0:
        violations.append(FieldViolation("prefetch", "must not be negative"))
    elif request.slots <= MAX_HELD_JOBS < request.slots + request.prefetch:
        violations.append(
            FieldViolation("prefetch", f"slots + prefetch must be at most {MAX_HELD_JOBS} (the jobs a heartbeat holds)")
        )
    models = {wire.AI_MODEL.from_wire(value) for value in request.models}
    kinds = {wire.AI_KIND.from_wire(value) for value in request.kinds}
    if not request.models or None in models:
        violations.append(FieldViolation("models", "must name at least one known model"))
    if not request.kinds or None in kinds:
        violations.append(FieldViolation("kinds", "must name at least one known kind"))
    if not 1 <= request.heartbeat <= MAX_HEARTBEAT:
        violations.append(
            FieldViolation("heartbeat", f"must be from 1 to {MAX_HEARTBEAT} (heartbeats are numbered from 1)")
        )
    if len(request.jobs) > MAX_HELD_JOBS:
        violations.append(FieldViolation("jobs", f"must hold at most {MAX_HELD_JOBS} jobs"))
    jobs: dict[uuid.UUID, Reported] = {}
    for index, job in enumerate(request.jobs[:MAX_HELD_JOBS]):
        generation_id = _generation_id(job.generation_id, f"jobs[{index}].generation_id", violations)
        # Read from the seconds and nanos: beyond datetime's range, ToTimedelta raises.
        running_for = job.running_for.seconds + job.running_for.nanos / 1e9
        if not 0 <= running_for <= MAX_RUNNING_FOR_S:
            violations.append(
                FieldViolation(f"jobs[{index}].running_for", f"must be from 0 to {MAX_RUNNING_FOR_S} seconds")
            )
        if generation_id is not None:
            jobs[generation_id] = Reported(running=job.running, running_for_s=running_for)
    if violations:
        raise InvalidArgument(violations)
    assert worker_id is not None
    return Heartbeat(
        worker_id=worker_id,
        address=request.address,
        slots=request.slots,
        prefetch=request.prefetch,
        models=frozenset(m for m in models if m is not None),
        kinds=frozenset(k for k in kinds if k is not None),
        number=request.heartbeat,
        draining=request.draining,
        leaving=request.leaving,
        jobs=jobs,
    )


class CallbackService(callback_pb2_grpc.CallbackServiceServicer):
    def __init__(self, store: GenerationStore, workers: WorkerStore, queue: QueueSettings) -> None:
        self._store = store
        self._workers = workers
        self._queue = queue

    async def Heartbeat(self, request, context):
        beat = parse_heartbeat(request)
        drop = await self._workers.heartbeat(
            beat, lease_s=self._queue.worker_lease_s, completion_deadline_s=self._queue.completion_deadline_s
        )
        if beat.number == 1 or beat.leaving:
            log.info(
                "worker left" if beat.leaving else "worker joined",
                extra={"worker_id": str(beat.worker_id), "address": beat.address, "slots": beat.slots},
            )
        answer = callback_pb2.HeartbeatResponse(drop_generation_ids=[str(gid) for gid in drop])
        answer.lease.FromTimedelta(timedelta(seconds=self._queue.worker_lease_s))
        return answer

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
