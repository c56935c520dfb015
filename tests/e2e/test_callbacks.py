"""CompleteGeneration is idempotent: one final state per generation."""

from __future__ import annotations

import hashlib
import secrets

import grpc
import psycopg
import pytest
from leo.callback.v1 import callback_pb2, callback_pb2_grpc
from leo.generation.v1 import generation_pb2

from tests.clients import api_for, code_of, wait_for

# The AI holds jobs far longer than these tests run, so only we call back.
SLOW_AI = {"MOCK_AI_MIN_DELAY_S": "600", "MOCK_AI_MAX_DELAY_S": "600"}


@pytest.fixture(scope="module")
def mesh(make_mesh):
    return make_mesh(env=SLOW_AI, with_envoy=False)


@pytest.fixture(scope="module")
def api(mesh):
    return api_for(mesh)


@pytest.fixture(scope="module")
def callbacks(mesh):
    with grpc.insecure_channel(f"127.0.0.1:{mesh.ports.callback}") as channel:
        yield callback_pb2_grpc.CallbackServiceStub(channel)


TOKENS: dict[str, str] = {}


def new_dispatch(mesh, generation_id: str) -> str:
    """Give the generation a fresh callback token, as a dispatch does
    (the AI holding the real one is far from calling back)."""
    token = secrets.token_urlsafe(16)
    with psycopg.connect(mesh.database_url) as conn:
        conn.execute(
            'UPDATE generations SET "callbackTokenHash" = %s WHERE "generationId" = %s',
            (hashlib.sha256(token.encode()).digest(), generation_id),
        )
    TOKENS[generation_id] = token
    return token


def created(api, mesh, prompt: str) -> str:
    """A generation the AI holds, with a token this test knows."""
    generation_id = api.create(prompt).generation_id
    wait_for(lambda: api.get(generation_id).attempts == 1, timeout_s=10, what="the dispatch")
    new_dispatch(mesh, generation_id)
    return generation_id


def completed(generation_id: str, *urls: str, token: str | None = None) -> callback_pb2.CompleteGenerationRequest:
    images = callback_pb2.Images(images=[callback_pb2.Image(url=u, width=64, height=64) for u in urls])
    return callback_pb2.CompleteGenerationRequest(
        generation_id=generation_id,
        callback_token=TOKENS.get(generation_id, "") if token is None else token,
        completed=images,
    )


def failed(generation_id: str, reason: str) -> callback_pb2.CompleteGenerationRequest:
    return callback_pb2.CompleteGenerationRequest(
        generation_id=generation_id, callback_token=TOKENS.get(generation_id, ""), failure_reason=reason
    )


def row(mesh, generation_id: str):
    with psycopg.connect(mesh.database_url) as conn:
        return conn.execute(
            'SELECT status::text, images, "failureReason", "updatedAt", "completedAt" FROM generations WHERE "generationId" = %s',
            (generation_id,),
        ).fetchone()


def test_same_result_twice_is_ok_and_changes_nothing(api, callbacks, mesh):
    generation_id = created(api, mesh, "twice")
    callbacks.CompleteGeneration(completed(generation_id, "https://img/a.png"), timeout=5)
    first = row(mesh, generation_id)
    assert first[0] == "COMPLETE" and first[1] == [{"url": "https://img/a.png", "width": 64, "height": 64}]
    callbacks.CompleteGeneration(completed(generation_id, "https://img/a.png"), timeout=5)
    assert row(mesh, generation_id) == first
    got = api.get(generation_id)
    assert got.status == generation_pb2.STATUS_COMPLETE and [i.url for i in got.images] == ["https://img/a.png"]


def test_other_result_for_a_final_generation_is_refused(api, callbacks, mesh):
    generation_id = created(api, mesh, "conflict")
    callbacks.CompleteGeneration(completed(generation_id, "https://img/b.png"), timeout=5)
    before = row(mesh, generation_id)
    other_images = lambda: callbacks.CompleteGeneration(completed(generation_id, "https://img/c.png"), timeout=5)  # noqa: E731
    other_kind = lambda: callbacks.CompleteGeneration(failed(generation_id, "boom"), timeout=5)  # noqa: E731
    assert code_of(other_images) == grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(other_kind) == grpc.StatusCode.FAILED_PRECONDITION
    assert row(mesh, generation_id) == before


def test_failure_is_recorded_with_its_reason_and_repeats_are_ok(api, callbacks, mesh):
    generation_id = created(api, mesh, "will fail")
    callbacks.CompleteGeneration(failed(generation_id, "content policy"), timeout=5)
    callbacks.CompleteGeneration(failed(generation_id, "content policy"), timeout=5)
    got = api.get(generation_id)
    assert got.status == generation_pb2.STATUS_FAILED and got.failure_reason == "content policy" and not got.images
    assert code_of(lambda: callbacks.CompleteGeneration(failed(generation_id, "other"), timeout=5)) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )


def test_unknown_generation_is_not_found(callbacks):
    missing = "00000000-0000-4000-8000-00000000beef"
    assert code_of(lambda: callbacks.CompleteGeneration(completed(missing, "https://x/y.png"), timeout=5)) == (
        grpc.StatusCode.NOT_FOUND
    )


@pytest.mark.parametrize(
    "request_",
    [
        callback_pb2.CompleteGenerationRequest(generation_id="nope", failure_reason="x"),
        callback_pb2.CompleteGenerationRequest(generation_id="00000000-0000-4000-8000-000000000001"),
        callback_pb2.CompleteGenerationRequest(
            generation_id="00000000-0000-4000-8000-000000000001", completed=callback_pb2.Images()
        ),
    ],
)
def test_malformed_callbacks_are_invalid_argument(callbacks, request_):
    assert code_of(lambda: callbacks.CompleteGeneration(request_, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT


def test_forged_callbacks_change_nothing(api, callbacks, mesh):
    generation_id = created(api, mesh, "forged")
    other_id = created(api, mesh, "other")
    before = row(mesh, generation_id)
    forgeries = [
        completed(generation_id, "https://evil/x.png", token=""),  # no token
        completed(generation_id, "https://evil/x.png", token="not-the-token"),
        completed(generation_id, "https://evil/x.png", token=TOKENS[other_id]),  # another generation's
    ]
    for forged in forgeries:
        assert code_of(lambda: callbacks.CompleteGeneration(forged, timeout=5)) == grpc.StatusCode.UNAUTHENTICATED
    assert row(mesh, generation_id) == before


def test_token_of_an_earlier_dispatch_no_longer_completes(api, callbacks, mesh):
    generation_id = created(api, mesh, "redispatched")
    first = TOKENS[generation_id]
    new_dispatch(mesh, generation_id)
    stale = completed(generation_id, "https://img/old.png", token=first)
    assert code_of(lambda: callbacks.CompleteGeneration(stale, timeout=5)) == grpc.StatusCode.UNAUTHENTICATED
    callbacks.CompleteGeneration(completed(generation_id, "https://img/new.png"), timeout=5)
    assert [i.url for i in api.get(generation_id).images] == ["https://img/new.png"]


def test_late_callback_for_a_cancelled_generation_changes_nothing(api, callbacks, mesh):
    generation_id = created(api, mesh, "cancel me")
    cancelled = api.cancel(generation_id)
    before = row(mesh, generation_id)
    callbacks.CompleteGeneration(completed(generation_id, "https://img/late.png"), timeout=5)  # acknowledged
    assert row(mesh, generation_id) == before
    assert api.get(generation_id).status == cancelled.status
