"""Batch RPCs (leo_mesh.batched_calls): requests made together go out as
one call, each caller getting its own outcome (RpcBatcher, against a
scripted StartGenerations call), and a server answers each item on its own,
as an outcome message: a status and the item's payload (answer_each). How
requests gather into calls is leo_mesh.coalesce's
(tests/unit/test_coalesce.py)."""

from __future__ import annotations

import asyncio
import contextvars

from google.rpc import error_details_pb2, status_pb2

from leo.ai.v1 import ai_pb2
from leo.callback.v1 import callback_pb2
from leo_mesh.batched_calls import RpcBatcher, answer_each
from leo_mesh.errors import BackendOverloaded
from leo_mesh.status import code_name


class ScriptedAi:
    """Answers each job with accepted_new = whether its prompt is "new"."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.answering = asyncio.Event()  # cleared: calls wait for it
        self.answering.set()

    async def __call__(self, jobs: list[ai_pb2.StartGenerationRequest]) -> list[ai_pb2.StartGenerationOutcome]:
        self.calls.append([job.generation_id for job in jobs])
        await asyncio.sleep(0)
        await self.answering.wait()
        return [
            ai_pb2.StartGenerationOutcome(
                status=status_pb2.Status(code=0),
                response=ai_pb2.StartGenerationResponse(accepted_new=job.prompt == "new"),
            )
            for job in jobs
        ]


def job(generation_id: str, prompt: str = "new") -> ai_pb2.StartGenerationRequest:
    return ai_pb2.StartGenerationRequest(generation_id=generation_id, prompt=prompt, callback_token="t")


async def test_jobs_asked_for_together_go_in_one_call_and_each_gets_its_own_outcome():
    ai = ScriptedAi()
    batcher = RpcBatcher(ai)
    outcomes = await asyncio.gather(*(batcher(job(f"g{i}", "new" if i % 2 else "held")) for i in range(5)))
    assert ai.calls == [["g0", "g1", "g2", "g3", "g4"]]
    assert [outcome.response.accepted_new for outcome in outcomes] == [False, True, False, True, False]


async def test_a_batch_over_the_size_limit_goes_in_several_calls_in_order():
    ai = ScriptedAi()
    one = job("g0").ByteSize()
    batcher = RpcBatcher(ai, max_bytes=2 * one)
    outcomes = await asyncio.gather(*(batcher(job(f"g{i}")) for i in range(5)))
    assert ai.calls == [["g0", "g1"], ["g2", "g3"], ["g4"]]
    assert all(outcome.response.accepted_new for outcome in outcomes)


async def test_a_job_bigger_than_the_limit_still_goes_alone():
    ai = ScriptedAi()
    batcher = RpcBatcher(ai, max_bytes=1)
    await asyncio.gather(batcher(job("g0")), batcher(job("g1")))
    assert ai.calls == [["g0"], ["g1"]]


async def test_jobs_asked_for_while_a_call_is_out_go_in_the_next():
    ai = ScriptedAi()
    batcher = RpcBatcher(ai, max_in_flight=2)
    first = asyncio.ensure_future(batcher(job("g0")))
    await asyncio.sleep(0)  # the first call is out
    await asyncio.sleep(0)
    second = await asyncio.gather(batcher(job("g1")), batcher(job("g2")))
    await first
    assert ai.calls == [["g0"], ["g1", "g2"]]
    assert all(outcome.response.accepted_new for outcome in second)


async def test_requests_made_while_calls_are_out_wait_and_go_together():
    ai = ScriptedAi()
    ai.answering.clear()
    batcher = RpcBatcher(ai, max_in_flight=1)
    first = asyncio.ensure_future(batcher(job("g0")))
    later = []
    for i in range(1, 4):  # one at a time, while the first call is out
        for _ in range(3):
            await asyncio.sleep(0)
        later.append(asyncio.ensure_future(batcher(job(f"g{i}"))))
    for _ in range(3):
        await asyncio.sleep(0)
    assert ai.calls == [["g0"]]
    ai.answering.set()
    await asyncio.gather(first, *later)
    assert ai.calls == [["g0"], ["g1", "g2", "g3"]]


# --- serving a batch call: each item on its own ---


async def test_each_item_is_answered_on_its_own_in_order_and_in_its_own_context(caplog):
    current = contextvars.ContextVar("current", default=None)

    async def handle(item: ai_pb2.StartGenerationRequest) -> dict[str, ai_pb2.StartGenerationResponse]:
        current.set(item.generation_id)
        await asyncio.sleep(0)  # the others run meanwhile
        if item.prompt == "refused":
            raise BackendOverloaded()
        if item.prompt == "broken":
            raise RuntimeError("a bug")
        return {"response": ai_pb2.StartGenerationResponse(accepted_new=current.get() == item.generation_id)}

    items = [job("g0"), job("g1", "refused"), job("g2", "broken"), job("g3")]
    answered = await answer_each(
        items,
        handle,
        outcome=ai_pb2.StartGenerationOutcome,
        span_name="start generation",
        traceparent=lambda item: "",
    )
    assert [(code_name(outcome.status.code), outcome.response.accepted_new) for outcome in answered] == [
        ("OK", True),
        ("UNAVAILABLE", False),
        ("INTERNAL", False),
        ("OK", True),
    ]
    reason = error_details_pb2.ErrorInfo()
    assert answered[1].status.details[-1].Unpack(reason) and reason.reason == "BACKEND_OVERLOADED"
    assert answered[2].status.message == "internal error"  # the details stay in the log
    assert [record.exc_info[1].args for record in caplog.records if record.exc_info] == [("a bug",)]
    assert current.get() is None


async def test_an_item_without_a_payload_is_answered_with_its_status_alone():
    async def handle(result: callback_pb2.CompleteGenerationRequest) -> None:
        if result.failure_reason == "refuse":
            raise BackendOverloaded()

    results = [
        callback_pb2.CompleteGenerationRequest(generation_id=f"g{i}", failure_reason=r)
        for i, r in enumerate(["ok", "refuse"])
    ]
    answered = await answer_each(results, handle, outcome=callback_pb2.CompleteGenerationOutcome)
    assert [code_name(outcome.status.code) for outcome in answered] == ["OK", "UNAVAILABLE"]
    assert answered[0] == callback_pb2.CompleteGenerationOutcome(status=status_pb2.Status(code=0))
