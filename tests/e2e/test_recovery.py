"""Recovery after an outage of a peer: nothing is lost or failed by the gap.

- The callback server is down long enough for generations to be dispatched
  again: the AI holds each job with the newest dispatch's token and delivers
  with it, so every generation ends COMPLETE.
- The AI comes back after an outage: the api_server reconnects within about
  a second and the generations created meanwhile are dispatched, none FAILED.
"""

from __future__ import annotations

import time
from datetime import datetime

import psycopg

from tests.clients import api_for, statuses, wait_for

QUICK = {
    "MAX_PENDING_PER_OWNER": "1000",
    "DISPATCH_POLL_INTERVAL_S": "0.1",
    "DISPATCH_BACKOFF_BASE_S": "0.05",
    "DISPATCH_BACKOFF_CAP_S": "0.2",
    "MOCK_AI_CALLBACK_BACKOFF_BASE_S": "0.05",
    "MOCK_AI_CALLBACK_BACKOFF_CAP_S": "0.3",
}


def attempts(database_url: str) -> list[int]:
    with psycopg.connect(database_url) as conn:
        return [n for (n,) in conn.execute("SELECT attempts FROM generations")]


def test_results_held_through_a_callback_outage_all_arrive_with_the_newest_token(make_mesh):
    env = {
        **QUICK,
        "MOCK_AI_MIN_DELAY_S": "0.3",
        "MOCK_AI_MAX_DELAY_S": "0.6",
        # Dispatched again every second while the results cannot be delivered.
        "COMPLETION_DEADLINE_S": "1",
        "DISPATCH_MAX_ATTEMPTS": "12",
        "DISPATCH_RPC_TIMEOUT_S": "2",
        "MOCK_AI_CALLBACK_TIMEOUT_S": "1",
    }
    mesh = make_mesh(env=env, with_envoy=False)
    api = api_for(mesh)
    mesh.callback_server.stop()
    total = 40
    ids = [api.create(f"held {i}", width=64, height=64).generation_id for i in range(total)]
    wait_for(lambda: min(attempts(mesh.database_url)) >= 4, timeout_s=30, what="every generation dispatched again")
    mesh.start_process(mesh.callback_server)
    counts = wait_for(
        lambda: (c := statuses(mesh.database_url)).get("PENDING", 0) == 0 and c, timeout_s=60, what="every result"
    )
    refused = [r for r in mesh.mock_ai.log_records() if r.get("event") == "callback refused"]
    print(f"\ncallback outage: {counts}; attempts up to {max(attempts(mesh.database_url))}; {len(refused)} refusals")
    assert counts == {"COMPLETE": total}
    assert {g.generation_id for g in map(api.get, ids)} == set(ids)
    # No result was thrown away for a token a newer dispatch replaced.
    assert refused == []


def test_dispatch_resumes_promptly_when_the_ai_comes_back(make_mesh):
    env = {
        **QUICK,
        "MOCK_AI_MIN_DELAY_S": "0.1",
        "MOCK_AI_MAX_DELAY_S": "0.2",
        # Few, quick attempts: a gap of seconds before reconnecting fails them.
        "DISPATCH_MAX_ATTEMPTS": "2",
        "DISPATCH_RPC_TIMEOUT_S": "3",
    }
    mesh = make_mesh(env=env, with_envoy=False)
    api = api_for(mesh)
    assert api.wait_final(api.create("before").generation_id).status == 2  # the channel is up
    mesh.mock_ai.kill()
    # Dispatches keep failing while the AI is down, so the channel keeps
    # trying to reconnect, and gRPC's default backoff between tries grows.
    outage_ends = time.monotonic() + 8
    while time.monotonic() < outage_ends:
        api.create("during the outage")
        time.sleep(0.25)
    mesh.start_process(mesh.mock_ai)
    back = time.time()
    ids = [api.create(f"after {i}", width=64, height=64).generation_id for i in range(20)]
    wait_for(
        lambda: statuses(mesh.database_url).get("PENDING", 0) == 0, timeout_s=30, what="every generation to finish"
    )
    after = [api.get(i) for i in ids]
    assert [g.status for g in after] == [2] * len(ids)  # COMPLETE, none FAILED by the gap
    assert all(g.attempts == 1 for g in after)
    starts = [
        datetime.fromisoformat(r["ts"]).timestamp()
        for r in mesh.mock_ai.log_records()
        if r.get("event") == "start_generation" and r["generation_id"] in ids
    ]
    print(f"\nfirst dispatch {min(starts) - back:.2f} s after the AI was SERVING again")
