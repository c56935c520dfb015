"""Progress while a generation is PENDING: the callback server applies the
worker's percent reports (rules.decide_progress), and watchers of the whole
mesh, run in process, see the mesh's queue positions fall, the phase go
from queued to running and percent rise to 100, then COMPLETE."""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from PIL import Image

from leo.ai.v1 import ai_pb2
from leo.callback.v1 import callback_pb2
from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from leo_mesh.db.keys import KeyStore
from leo_mesh.rules import NO_PROGRESS, Progress, Status
from leo_mesh.status import code_name
from mock_ai_server.jobs import Job
from mock_ai_server.progress import ProgressReporter
from tests.inprocess import api_server, callback_server, channel_to, media_settings, mock_ai
from tests.integration.ai_side import OWNER, completed, dispatched, redispatch


def report(generation_id, token: str, *, percent: int):
    return callback_pb2.ProgressReport(generation_id=str(generation_id), callback_token=token, percent=percent)


async def answered(callbacks, *reports) -> list[status_pb2.Status]:
    """Each report's status, in order."""
    answer = await callbacks.ReportProgress(callback_pb2.ReportProgressRequest(reports=reports), timeout=5)
    return [outcome.status for outcome in answer.outcomes]


async def send(callbacks, *reports) -> list[str]:
    """Each report's status code."""
    return [code_name(status.code) for status in await answered(callbacks, *reports)]


def reason_of(status: status_pb2.Status) -> str:
    info = error_details_pb2.ErrorInfo()
    assert status.details[-1].Unpack(info)
    return info.reason


async def test_reports_move_a_pending_generation_forward_only(store, callbacks):
    generation_id, token = await dispatched(store, "progress")
    before = await store.get(generation_id, OWNER)
    assert before.progress == NO_PROGRESS
    assert await send(callbacks, report(generation_id, token, percent=0)) == ["OK"]
    assert (await store.get(generation_id, OWNER)).progress == Progress(percent=0)
    assert await send(callbacks, report(generation_id, token, percent=40)) == ["OK"]
    # Behind what it shows: a late, smaller percent. Taken, changing nothing.
    behind = await send(callbacks, report(generation_id, token, percent=30), report(generation_id, token, percent=40))
    assert behind == ["OK", "OK"]
    after = await store.get(generation_id, OWNER)
    assert after.progress == Progress(percent=40)
    assert after.updated_at == before.updated_at  # a report is not a change of the generation itself


async def test_a_stale_token_changes_nothing_and_is_refused(store, callbacks):
    generation_id, first = await dispatched(store, "redispatched")
    await send(callbacks, report(generation_id, first, percent=70))
    latest = await redispatch(store, generation_id)
    # The new dispatch starts afresh; the old one's reports are refused.
    assert (await store.get(generation_id, OWNER)).progress == NO_PROGRESS
    (stale,) = await answered(callbacks, report(generation_id, first, percent=90))
    assert code_name(stale.code) == "UNAUTHENTICATED" and reason_of(stale) == "CALLBACK_TOKEN_INVALID"
    assert (await store.get(generation_id, OWNER)).progress == NO_PROGRESS
    unknown = uuid.uuid4()
    codes = await send(callbacks, report(unknown, latest, percent=5), report(generation_id, latest, percent=2))
    assert codes == ["UNAUTHENTICATED", "OK"]  # an unknown generation looks like a wrong token
    assert (await store.get(generation_id, OWNER)).progress == Progress(percent=2)


async def test_a_final_generation_keeps_what_it_shows(store, callbacks):
    done_id, done_token = await dispatched(store, "done")
    await send(callbacks, report(done_id, done_token, percent=50))
    await callbacks.CompleteGeneration(completed(done_id, done_token, "0.png"), timeout=5)
    cancelled_id, cancelled_token = await dispatched(store, "cancelled")
    await store.cancel(cancelled_id, OWNER)
    done, cancelled = await store.get(done_id, OWNER), await store.get(cancelled_id, OWNER)
    codes = await send(
        callbacks, report(done_id, done_token, percent=80), report(cancelled_id, cancelled_token, percent=80)
    )
    assert codes == ["OK", "OK"]  # the token is right: nothing to refuse, nothing to change
    assert await store.get(done_id, OWNER) == done and await store.get(cancelled_id, OWNER) == cancelled
    assert done.status is Status.COMPLETE and cancelled.status is Status.CANCELLED


@pytest.mark.parametrize(
    "bad, field",
    [
        (callback_pb2.ProgressReport(generation_id="nope", callback_token="t", percent=1), "generation_id"),
        (callback_pb2.ProgressReport(generation_id=str(uuid.uuid4()), callback_token="t", percent=101), "percent"),
        (callback_pb2.ProgressReport(generation_id=str(uuid.uuid4()), callback_token="t", percent=-1), "percent"),
    ],
)
async def test_a_malformed_report_is_invalid_argument_naming_its_field_and_the_others_count(
    store, callbacks, bad, field
):
    generation_id, token = await dispatched(store, "beside a malformed report")
    malformed, good = await answered(callbacks, bad, report(generation_id, token, percent=10))
    assert code_name(malformed.code) == "INVALID_ARGUMENT" and reason_of(malformed) == "FIELD_VIOLATION"
    violations = error_details_pb2.BadRequest()
    assert malformed.details[0].Unpack(violations)
    assert [violation.field for violation in violations.field_violations] == [field]
    assert code_name(good.code) == "OK"
    assert (await store.get(generation_id, OWNER)).progress == Progress(percent=10)


async def test_a_call_holds_at_most_a_thousand_reports(store, callbacks):
    generation_id, token = await dispatched(store, "one of too many")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await send(callbacks, *[report(generation_id, token, percent=10)] * 1001)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (await store.get(generation_id, OWNER)).progress == NO_PROGRESS


class Recorded:
    """The callback stub, recording which generations each ReportProgress call names."""

    def __init__(self, callbacks) -> None:
        self.callbacks = callbacks
        self.calls: list[list[str]] = []

    async def ReportProgress(self, request, **kwargs):
        self.calls.append([report.generation_id for report in request.reports])
        return await self.callbacks.ReportProgress(request, **kwargs)


async def test_the_mock_ai_stops_reporting_for_a_dispatch_whose_token_was_refused(store, callbacks):
    stale_id, stale_token = await dispatched(store, "re-dispatched meanwhile")
    await redispatch(store, stale_id)
    fresh_id, fresh_token = await dispatched(store, "fresh")
    recorded = Recorded(callbacks)
    reporter = ProgressReporter(recorded, interval_s=0, timeout_s=5)
    jobs = [
        Job(ai_pb2.StartGenerationRequest(generation_id=str(g), callback_token=t))
        for g, t in [(stale_id, stale_token), (fresh_id, fresh_token)]
    ]
    for percent in (10, 20):
        for job in jobs:
            reporter.report(job, Progress(percent=percent))
        await reporter.flush()
    assert recorded.calls == [[str(stale_id), str(fresh_id)], [str(fresh_id)]]
    assert (await store.get(fresh_id, OWNER)).progress == Progress(percent=20)
    assert (await store.get(stale_id, OWNER)).progress == NO_PROGRESS


# --- the whole mesh in process ---


async def watch(stub, metadata, generation_id: str, seen: list[generation_pb2.Generation]) -> None:
    request = generation_pb2.WatchGenerationRequest(generation_id=generation_id)
    async for message in stub.WatchGeneration(request, metadata=metadata, timeout=60):
        seen.append(message.generation)


@contextlib.asynccontextmanager
async def mesh(database_url, **ai_settings):
    """callback_server, the mock AI and an api_server, in this event loop, sharing one media directory."""
    media = media_settings()
    async with (
        callback_server(database_url, media) as callback,
        mock_ai(f"127.0.0.1:{callback.port}", media, **ai_settings),
        api_server(database_url, real_workers=True, media=media) as api,
        channel_to(api) as channel,
    ):
        key = await KeyStore(api.db).create("watcher")
        yield generation_pb2_grpc.GenerationServiceStub(channel), (("authorization", f"Bearer {key}"),)


async def test_watchers_see_queue_positions_fall_and_progress_rise_to_100(database_url):
    async with mesh(
        database_url,
        mock_ai_slots=2,
        mock_ai_prefetch=0,
        mock_ai_min_delay_s=0.6,
        mock_ai_max_delay_s=0.8,
        mock_ai_progress_interval_s=0.02,
        mock_ai_images_per_generation=1,
    ) as (stub, metadata):
        created = []
        for i in range(6):
            request = generation_pb2.CreateGenerationRequest(prompt=f"job {i}", width=64, height=64)
            created.append((await stub.CreateGeneration(request, metadata=metadata, timeout=10)).generation)
        seen: list[list[generation_pb2.Generation]] = [[] for _ in created]
        await asyncio.gather(*(watch(stub, metadata, g.generation_id, s) for g, s in zip(created, seen, strict=True)))

    queued_long_enough = 0
    for states in seen:
        assert states[-1].status == generation_pb2.STATUS_COMPLETE and states[-1].progress == 100
        pending = states[:-1]
        assert all(s.status == generation_pb2.STATUS_PENDING for s in pending)
        assert states[-1].phase == generation_pb2.PHASE_UNSPECIFIED and not states[-1].HasField("queue_position")
        positions = [s.queue_position for s in pending if s.HasField("queue_position")]
        percents = [s.progress for s in states if s.HasField("progress")]
        # A place never goes back (one class here); a new estimate may repeat it.
        assert positions == sorted(positions, reverse=True)
        assert percents == sorted(percents) and percents[-1] == 100
        # Queued, then on a worker, then running: never back. Only the queued have a place,
        # only the running a percent.
        phases = [s.phase for s in pending]
        order = [generation_pb2.PHASE_QUEUED, generation_pb2.PHASE_STARTING, generation_pb2.PHASE_RUNNING]
        assert phases == sorted(phases, key=order.index)
        for s in pending:
            assert s.HasField("queue_position") == (s.phase == generation_pb2.PHASE_QUEUED)
            assert not s.HasField("progress") or s.phase == generation_pb2.PHASE_RUNNING
        queued_long_enough += len(set(positions)) >= 2
    # Six jobs, two at a time: the later ones wait and are seen moving up.
    assert queued_long_enough >= 1
    assert any(0 < s.progress < 100 for states in seen for s in states if s.HasField("progress"))


async def test_a_video_generation_is_one_animation(database_url):
    async with mesh(database_url, mock_ai_min_delay_s=0, mock_ai_max_delay_s=0, mock_ai_video_frames=5) as (
        stub,
        metadata,
    ):
        request = generation_pb2.CreateGenerationRequest(
            prompt="a whale", width=96, height=64, kind=generation_pb2.KIND_VIDEO
        )
        created = (await stub.CreateGeneration(request, metadata=metadata, timeout=10)).generation
        states: list[generation_pb2.Generation] = []
        await watch(stub, metadata, created.generation_id, states)
        done = states[-1]
        assert done.kind == generation_pb2.KIND_VIDEO and not done.images
        (asset,) = done.assets
        assert (asset.content_type, asset.width, asset.height, asset.frame_count) == ("image/webp", 96, 64, 5)
        body = b"".join(
            [
                chunk.data
                async for chunk in stub.GetGenerationAsset(
                    generation_pb2.GetGenerationAssetRequest(generation_id=created.generation_id, index=0),
                    metadata=metadata,
                    timeout=10,
                )
            ]
        )
    assert len(body) == asset.byte_size
    animation = Image.open(io.BytesIO(body))
    assert (animation.format, animation.size, animation.n_frames) == ("WEBP", (96, 64), 5)
    assert animation.is_animated
