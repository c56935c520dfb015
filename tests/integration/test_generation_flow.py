"""The whole flow in process over gRPC: create → PENDING at once → COMPLETE
with images, made by the real mock AI and recorded by the real callback
server on a real database. The same over JSON through Envoy:
tests/e2e/test_through_envoy.py."""

from __future__ import annotations

import asyncio

import pytest

from leo.generation.v1 import generation_pb2
from tests.inprocess import flow
from tests.mesh_fixtures import migrated_database
from tests.scrape import Scrape


@pytest.fixture(scope="module")
async def mesh(postgres):
    ai = {"mock_ai_min_delay_s": 0.3, "mock_ai_max_delay_s": 0.8}
    with migrated_database(postgres) as database_url:
        async with flow(database_url, ai=ai) as running:
            yield running


async def test_create_is_pending_at_once_then_complete(mesh):
    api = await mesh.client()
    created = await api.create(prompt="a red fox in snow")
    assert created.status == generation_pb2.STATUS_PENDING
    assert (created.prompt, created.model, created.width, created.height) == (
        "a red fox in snow",
        generation_pb2.MODEL_SDXL,
        1024,
        1024,
    )
    assert created.create_time.seconds > 0 and not created.images
    pending = await api.get(created.generation_id)
    assert pending.status in (generation_pb2.STATUS_PENDING, generation_pb2.STATUS_COMPLETE)
    if pending.status == generation_pb2.STATUS_PENDING:
        assert not pending.images

    done = await api.wait_final(created.generation_id)
    assert done == await api.get(created.generation_id)
    assert done.status == generation_pb2.STATUS_COMPLETE
    assert done.attempts == 1 and done.failure_reason == ""
    assert len(done.images) == 2
    for index, image in enumerate(done.images):
        # A signed link to the file, at the public API's address.
        link = f"{mesh.media.public_base_url}/v1/generations/{created.generation_id}/assets/{index}?"
        assert image.url.startswith(link)
        assert image.url == done.assets[index].url and "signature=" in image.url
        assert (image.width, image.height) == (1024, 1024)
    assert done.complete_time.ToDatetime() >= done.create_time.ToDatetime()


async def test_create_keeps_model_and_size(mesh):
    api = await mesh.client()
    created = await api.create(prompt="tiny", model=generation_pb2.MODEL_SD, width=512, height=256)
    done = await api.wait_final(created.generation_id)
    assert (done.model, done.width, done.height) == (generation_pb2.MODEL_SD, 512, 256)
    assert {(i.width, i.height) for i in done.images} == {(512, 256)}


async def test_many_generations_all_finish(mesh):
    api = await mesh.client()
    ids = [(await api.create(prompt=f"prompt {i}", width=64, height=64)).generation_id for i in range(30)]
    finished = await asyncio.gather(*map(api.wait_final, ids))
    assert [g.status for g in finished] == [generation_pb2.STATUS_COMPLETE] * 30
    assert [(await api.get(i)).status for i in ids] == [generation_pb2.STATUS_COMPLETE] * 30


async def test_a_video_is_counted_as_a_video_when_created_and_when_finished(mesh):
    # Both servers run in this process, so the api_server's /metrics shows
    # the callback_server's counters too.
    metrics = f"http://127.0.0.1:{mesh.api.metrics.port}/metrics"
    before = Scrape(metrics)
    api = await mesh.client()
    created = await api.create(prompt="a whale breaching", kind=generation_pb2.KIND_VIDEO, width=64, height=64)
    done = await api.wait_final(created.generation_id)
    assert done.status == generation_pb2.STATUS_COMPLETE
    after = Scrape(metrics)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("leo_generations_created_total", model="SDXL", kind="VIDEO") == 1
    assert moved("leo_generations_created_total", kind="IMAGE") == 0
    assert moved("leo_generations_finished_total", status="COMPLETE", model="SDXL", kind="VIDEO") == 1
    assert moved("leo_generations_finished_total", kind="IMAGE") == 0
