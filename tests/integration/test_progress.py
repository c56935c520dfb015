"""Progress while a generation is PENDING: the callback server applies the
AI's reports (rules.decide_progress), and watchers of the whole mesh, run
in process, see queue positions fall and percent rise to 100, then COMPLETE."""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid

import grpc
import pytest
from PIL import Image

from leo.ai.v1 import ai_pb2_grpc
from leo.callback.v1 import callback_pb2
from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from leo_mesh.db.keys import KeyStore
from leo_mesh.rules import NO_PROGRESS, Progress, Status
from tests.inprocess import api_server, callback_server, channel_to, media_settings, mock_ai
from tests.integration.ai_side import OWNER, completed, dispatched, redispatch


def report(generation_id, token: str, *, position: int | None = None, percent: int | None = None):
    if position is not None:
        return callback_pb2.ProgressReport(
            generation_id=str(generation_id), callback_token=token, queue_position=position
        )
    return callback_pb2.ProgressReport(generation_id=str(generation_id), callback_token=token, percent=percent)


async def send(callbacks, *reports) -> list[str]:
    answer = await callbacks.ReportProgress(callback_pb2.ReportProgressRequest(reports=reports), timeout=5)
    return list(answer.refused_generation_ids)


async def test_reports_move_a_pending_generation_forward_only(store, callbacks):
    generation_id, token = await dispatched(store, "progress")
    before = await store.get(generation_id, OWNER)
    assert before.progress == NO_PROGRESS
    assert await send(callbacks, report(generation_id, token, position=3)) == []
    assert (await store.get(generation_id, OWNER)).progress == Progress(queue_position=3)
    await send(callbacks, report(generation_id, token, percent=40))
    # Behind what it shows: a late queue position, a smaller percent.
    await send(callbacks, report(generation_id, token, position=1), report(generation_id, token, percent=30))
    after = await store.get(generation_id, OWNER)
    assert after.progress == Progress(percent=40)
    assert after.updated_at == before.updated_at  # a report is not a change of the generation itself


async def test_a_stale_token_changes_nothing_and_is_refused(store, callbacks):
    generation_id, first = await dispatched(store, "redispatched")
    await send(callbacks, report(generation_id, first, percent=70))
    latest = await redispatch(store, generation_id)
    # The new dispatch starts afresh; the old one's reports are refused.
    assert (await store.get(generation_id, OWNER)).progress == NO_PROGRESS
    assert await send(callbacks, report(generation_id, first, percent=90)) == [str(generation_id)]
    assert (await store.get(generation_id, OWNER)).progress == NO_PROGRESS
    unknown = uuid.uuid4()
    refused = await send(callbacks, report(unknown, latest, percent=5), report(generation_id, latest, position=2))
    assert refused == [str(unknown)]
    assert (await store.get(generation_id, OWNER)).progress == Progress(queue_position=2)


async def test_a_final_generation_keeps_what_it_shows(store, callbacks):
    done_id, done_token = await dispatched(store, "done")
    await send(callbacks, report(done_id, done_token, percent=50))
    await callbacks.CompleteGeneration(completed(done_id, done_token, "0.png"), timeout=5)
    cancelled_id, cancelled_token = await dispatched(store, "cancelled")
    await store.cancel(cancelled_id, OWNER)
    done, cancelled = await store.get(done_id, OWNER), await store.get(cancelled_id, OWNER)
    refused = await send(
        callbacks, report(done_id, done_token, percent=80), report(cancelled_id, cancelled_token, percent=80)
    )
    assert refused == []  # the token is right: nothing to refuse, nothing to change
    assert await store.get(done_id, OWNER) == done and await store.get(cancelled_id, OWNER) == cancelled
    assert done.status is Status.COMPLETE and cancelled.status is Status.CANCELLED


@pytest.mark.parametrize(
    "bad",
    [
        callback_pb2.ProgressReport(generation_id="nope", callback_token="t", percent=1),
        callback_pb2.ProgressReport(generation_id=str(uuid.uuid4()), callback_token="t", percent=101),
        callback_pb2.ProgressReport(generation_id=str(uuid.uuid4()), callback_token="t", percent=-1),
        callback_pb2.ProgressReport(generation_id=str(uuid.uuid4()), callback_token="t", queue_position=0),
        callback_pb2.ProgressReport(generation_id=str(uuid.uuid4()), callback_token="t"),
    ],
)
async def test_malformed_reports_are_invalid_argument(callbacks, bad):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await send(callbacks, bad)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


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
        mock_ai(f"127.0.0.1:{callback.port}", media, **ai_settings) as ai,
        channel_to(ai) as ai_channel,
        api_server(database_url, ai=ai_pb2_grpc.AIServiceStub(ai_channel), media=media) as api,
        channel_to(api) as channel,
    ):
        key = await KeyStore(api.db).create("watcher")
        yield generation_pb2_grpc.GenerationServiceStub(channel), (("authorization", f"Bearer {key}"),)


async def test_watchers_see_queue_positions_fall_and_progress_rise_to_100(database_url):
    async with mesh(
        database_url,
        mock_ai_max_concurrent_jobs=2,
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
        positions = [s.queue_position for s in pending if s.HasField("queue_position")]
        percents = [s.progress for s in states if s.HasField("progress")]
        assert positions == sorted(positions, reverse=True) and len(set(positions)) == len(positions)
        assert percents == sorted(percents) and percents[-1] == 100
        # Queued, then running: a percent is never followed by a place in the queue.
        stages = [
            "queued" if s.HasField("queue_position") else "running"
            for s in pending
            if s.HasField("queue_position") or s.HasField("progress")
        ]
        assert stages == sorted(stages, key=["queued", "running"].index)
        queued_long_enough += len(positions) >= 2
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
