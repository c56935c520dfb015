"""Dispatch retries on the whole flow in process: the real mock AI refuses
a job (injected by its settings) and the api_server retries it, or gives up
after its last attempt. Crashes, outages and replicas on real processes:
tests/e2e/test_dispatch_reliability.py."""

from __future__ import annotations

import asyncio
from collections import Counter

from leo.generation.v1 import generation_pb2
from tests import rows
from tests.inprocess import flow
from tests.log_lines import captured_lines

QUICK_RETRIES = {"dispatch_backoff_base_s": 0.05, "dispatch_backoff_cap_s": 0.2, "dispatch_poll_interval_s": 0.2}
AI = {"mock_ai_min_delay_s": 0.2, "mock_ai_max_delay_s": 0.5}


def start_calls(lines: list[dict]) -> Counter:
    return Counter(r["generation_id"] for r in lines if r.get("event") == "start_generation")


async def test_unavailable_twice_then_accepted(database_url):
    ai = {**AI, "mock_ai_start_failures_per_generation": 2}
    with captured_lines() as lines:
        async with flow(database_url, ai=ai, **QUICK_RETRIES) as mesh:
            api = await mesh.client()
            generation_id = (await api.create(prompt="retry me")).generation_id
            done = await api.wait_final(generation_id)
    assert done.status == generation_pb2.STATUS_COMPLETE
    assert done.attempts == 3
    retries = [r for r in lines if r.get("event") == "dispatch retry" and r["generation_id"] == generation_id]
    assert [r["attempt"] for r in retries] == [1, 2]
    for retry in retries:
        assert retry["error"].startswith("UNAVAILABLE") and 0 <= retry["delay_s"] <= 0.2
    assert start_calls(lines)[generation_id] == 3


async def test_always_unavailable_fails_after_max_attempts(database_url):
    ai = {**AI, "mock_ai_start_failure_rate": 1}
    async with flow(database_url, ai=ai, dispatch_max_attempts=4, **QUICK_RETRIES) as mesh:
        api = await mesh.client()
        done = await api.wait_final((await api.create(prompt="never")).generation_id)
    assert done.status == generation_pb2.STATUS_FAILED
    assert done.attempts == 4
    assert done.failure_reason.startswith("the AI backend could not be reached after 4 attempts")
    assert "UNAVAILABLE" in done.failure_reason
    recorded = await asyncio.to_thread(rows.dispatch, database_url, done.generation_id)
    assert recorded.last_error.startswith("UNAVAILABLE") and recorded.next_attempt_at is None
