"""CompleteGeneration is idempotent: one final state per generation. The
callback server runs in process; generations are created and dispatched
through the store, so each test holds the token a dispatch handed the AI."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.rpc import error_details_pb2

from leo.callback.v1 import callback_pb2
from leo_mesh.rules import Status
from leo_mesh.status import code_name
from tests.integration.ai_side import OWNER, completed, dispatched, redispatch
from tests.rows import FAKE_WORKER_ADDRESS


def keys(row) -> list[str]:
    return [asset.key for asset in row.assets]


def failed(generation_id, token: str, reason: str) -> callback_pb2.CompleteGenerationRequest:
    return callback_pb2.CompleteGenerationRequest(
        generation_id=str(generation_id), callback_token=token, failure_reason=reason
    )


async def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code()


async def test_same_result_twice_is_ok_and_changes_nothing(store, callbacks):
    generation_id, token = await dispatched(store, "twice")
    await callbacks.CompleteGeneration(completed(generation_id, token, "a.png"), timeout=5)
    first = await store.get(generation_id, OWNER)
    assert first.status is Status.COMPLETE
    assert [(a.key, a.content_type, a.width, a.byte_size) for a in first.assets] == [
        (f"{generation_id}/a.png", "image/png", 64, 100)
    ]
    await callbacks.CompleteGeneration(completed(generation_id, token, "a.png"), timeout=5)
    assert await store.get(generation_id, OWNER) == first


async def test_other_result_for_a_final_generation_is_refused(store, callbacks):
    generation_id, token = await dispatched(store, "conflict")
    await callbacks.CompleteGeneration(completed(generation_id, token, "b.png"), timeout=5)
    before = await store.get(generation_id, OWNER)
    other_images = callbacks.CompleteGeneration(completed(generation_id, token, "c.png"), timeout=5)
    assert await code_of(other_images) == grpc.StatusCode.FAILED_PRECONDITION
    assert await code_of(callbacks.CompleteGeneration(failed(generation_id, token, "boom"), timeout=5)) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    assert await store.get(generation_id, OWNER) == before


async def test_failure_is_recorded_with_its_reason_and_repeats_are_ok(store, callbacks):
    generation_id, token = await dispatched(store, "will fail")
    await callbacks.CompleteGeneration(failed(generation_id, token, "content policy"), timeout=5)
    await callbacks.CompleteGeneration(failed(generation_id, token, "content policy"), timeout=5)
    got = await store.get(generation_id, OWNER)
    assert got.status is Status.FAILED and got.failure_reason == "content policy" and not got.assets
    assert await code_of(callbacks.CompleteGeneration(failed(generation_id, token, "other"), timeout=5)) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )


async def test_an_unknown_generation_looks_like_a_wrong_token(store, callbacks):
    """The port does not tell which generation ids exist."""
    generation_id, _ = await dispatched(store, "exists")
    missing = uuid.UUID("00000000-0000-4000-8000-00000000beef")
    unknown = await code_of(callbacks.CompleteGeneration(completed(missing, "t", "y.png"), timeout=5))
    wrong = await code_of(callbacks.CompleteGeneration(completed(generation_id, "t", "y.png"), timeout=5))
    assert unknown == wrong == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    "request_",
    [
        callback_pb2.CompleteGenerationRequest(generation_id="nope", failure_reason="x"),
        callback_pb2.CompleteGenerationRequest(generation_id="00000000-0000-4000-8000-000000000001"),
        callback_pb2.CompleteGenerationRequest(
            generation_id="00000000-0000-4000-8000-000000000001", stored=callback_pb2.StoredAssets()
        ),
    ],
)
async def test_malformed_callbacks_are_invalid_argument(callbacks, request_):
    assert await code_of(callbacks.CompleteGeneration(request_, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "make",
    [
        lambda g, t: completed(g, t, "a\x00.png"),
        lambda g, t: completed(g, t, "a\n.png"),
        lambda g, t: completed(g, t, "a .png"),
        lambda g, t: completed(g, t, "a" * 3000),
        lambda g, t: completed(g, t, "../other/a.png"),
        lambda g, t: completed(g, t, "a.png", prefix="00000000-0000-4000-8000-000000000001/"),  # another's files
        lambda g, t: completed(g, t, "a.png", prefix=""),
        lambda g, t: failed(g, t, "bad\x00reason"),
        # URLs are refused: the mesh serves only files in its media store.
        lambda g, t: callback_pb2.CompleteGenerationRequest(
            generation_id=str(g),
            callback_token=t,
            completed=callback_pb2.Images(images=[callback_pb2.Image(url="https://img/a.png", width=64, height=64)]),
        ),
    ],
)
async def test_results_the_database_cannot_hold_are_invalid_argument_and_change_nothing(store, callbacks, make):
    """INVALID_ARGUMENT is final for the AI: it is not retried forever."""
    generation_id, token = await dispatched(store, "nul")
    before = await store.get(generation_id, OWNER)
    assert await code_of(callbacks.CompleteGeneration(make(generation_id, token), timeout=5)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert await store.get(generation_id, OWNER) == before


async def test_forged_callbacks_change_nothing(store, callbacks):
    generation_id, _ = await dispatched(store, "forged")
    _, other_token = await dispatched(store, "other")
    before = await store.get(generation_id, OWNER)
    for token in ["", "not-the-token", other_token]:  # none, made up, another generation's
        forged = callbacks.CompleteGeneration(completed(generation_id, token, "x.png"), timeout=5)
        assert await code_of(forged) == grpc.StatusCode.UNAUTHENTICATED
    assert await store.get(generation_id, OWNER) == before


async def test_token_of_an_earlier_dispatch_no_longer_completes(store, callbacks):
    generation_id, first = await dispatched(store, "redispatched")
    latest = await redispatch(store, generation_id)
    stale = callbacks.CompleteGeneration(completed(generation_id, first, "old.png"), timeout=5)
    assert await code_of(stale) == grpc.StatusCode.UNAUTHENTICATED
    await callbacks.CompleteGeneration(completed(generation_id, latest, "new.png"), timeout=5)
    assert keys(await store.get(generation_id, OWNER)) == [f"{generation_id}/new.png"]


async def test_late_callback_for_a_cancelled_generation_changes_nothing(store, callbacks):
    generation_id, token = await dispatched(store, "cancel me")
    cancelled, worker = await store.cancel(generation_id, OWNER)
    assert worker == FAKE_WORKER_ADDRESS  # the api_server tells it to stop the job
    await callbacks.CompleteGeneration(completed(generation_id, token, "late.png"), timeout=5)  # acknowledged
    assert await store.get(generation_id, OWNER) == cancelled
    assert cancelled.status is Status.CANCELLED and cancelled.phase is None


async def test_results_in_one_batch_are_each_recorded_or_refused_on_their_own(store, callbacks):
    done_id, done_token = await dispatched(store, "already done")
    await callbacks.CompleteGeneration(completed(done_id, done_token, "first.png"), timeout=5)
    fresh_id, fresh_token = await dispatched(store, "fresh")
    failing_id, failing_token = await dispatched(store, "failing")
    forged_id, _ = await dispatched(store, "forged")
    results = [
        completed(fresh_id, fresh_token, "a.png"),
        completed(done_id, done_token, "first.png"),  # a repeat: OK, nothing changes
        completed(done_id, done_token, "other.png"),  # another result for a final one
        completed(forged_id, "not the token", "x.png"),
        failed(failing_id, failing_token, "content policy"),
        completed(fresh_id, fresh_token, "a.png", prefix="elsewhere/"),  # invalid, though its generation is fine
    ]
    answer = await callbacks.CompleteGenerations(callback_pb2.CompleteGenerationsRequest(results=results), timeout=5)
    assert [code_name(outcome.status.code) for outcome in answer.outcomes] == [
        "OK",
        "OK",
        "FAILED_PRECONDITION",
        "UNAUTHENTICATED",
        "OK",
        "INVALID_ARGUMENT",
    ]
    reason = error_details_pb2.ErrorInfo()
    assert answer.outcomes[3].status.details[-1].Unpack(reason) and reason.reason == "CALLBACK_TOKEN_INVALID"
    assert keys(await store.get(fresh_id, OWNER)) == [f"{fresh_id}/a.png"]
    assert keys(await store.get(done_id, OWNER)) == [f"{done_id}/first.png"]
    assert (await store.get(failing_id, OWNER)).status is Status.FAILED
    assert (await store.get(forged_id, OWNER)).status is Status.PENDING


async def test_a_batch_holds_at_most_a_thousand_results(store, callbacks):
    generation_id, token = await dispatched(store, "one of too many")
    request = callback_pb2.CompleteGenerationsRequest(results=[completed(generation_id, token, "a.png")] * 1001)
    assert await code_of(callbacks.CompleteGenerations(request, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT
    assert (await store.get(generation_id, OWNER)).status is Status.PENDING
