"""Dispatch never loses a generation on real processes: kill -9 of an
api_server (a replica, or all of them), of the mock AI, and outages of the
callback server and of the AI; two replicas dispatch each generation
exactly once. Short delays come from settings. Retries that need no crash
(a job refused, refused until the last attempt), in process:
tests/integration/test_dispatch.py.

Most tests share one mesh of two api_server replicas; each counts only the
generations it made, and leaves every process running."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from leo.generation.v1 import generation_pb2
from tests import rows
from tests.clients import Api, api_for, wait_for

QUICK_RETRIES = {
    "MAX_PENDING_PER_OWNER": "1000",  # the tests load one owner with hundreds
    "MOCK_AI_MAX_CONCURRENT_JOBS": "1000",  # and the AI works on all of them at once
    "DISPATCH_BACKOFF_BASE_S": "0.05",
    "DISPATCH_BACKOFF_CAP_S": "0.2",
    "DISPATCH_POLL_INTERVAL_S": "0.2",
    "DISPATCH_RPC_TIMEOUT_S": "2",
    "MOCK_AI_MIN_DELAY_S": "0.2",
    "MOCK_AI_MAX_DELAY_S": "0.5",
    "MOCK_AI_CALLBACK_BACKOFF_BASE_S": "0.05",
    "MOCK_AI_CALLBACK_BACKOFF_CAP_S": "0.5",
}
SMALL = {"width": 64, "height": 64}
COMPLETE = generation_pb2.STATUS_COMPLETE


@pytest.fixture(scope="module")
def replicas(make_mesh):
    return make_mesh(env=QUICK_RETRIES, api_replicas=2, with_envoy=False)


def replica(mesh, index: int, owner: str = "tester") -> Api:
    return api_for(mesh, owner, address=f"127.0.0.1:{mesh.ports.api[index]}")


def create_many(api: Api, count: int, prefix: str = "p") -> list[str]:
    with ThreadPoolExecutor(16) as pool:
        # Small images: these tests are about dispatch, not the mock AI's renderer.
        return list(pool.map(lambda i: api.create(f"{prefix} {i}", **SMALL).generation_id, range(count)))


def wait_all_final(database_url: str, ids: list[str], timeout_s: float) -> dict[str, int]:
    return wait_for(
        lambda: (counts := rows.statuses(database_url, ids=ids)).get("PENDING", 0) == 0 and counts,
        timeout_s=timeout_s,
        interval_s=0.25,
        what="every generation to reach a final state",
    )


def start_calls(mesh, ids: list[str] | None = None) -> Counter:
    calls = Counter(r["generation_id"] for r in mesh.mock_ai.log_records() if r.get("event") == "start_generation")
    return calls if ids is None else Counter({i: calls[i] for i in ids if i in calls})


def test_two_api_servers_send_each_generation_exactly_once(replicas):
    clients = [replica(replicas, index, "shared") for index in range(2)]
    dispatched_before = [sum(r.get("event") == "dispatched" for r in api.log_records()) for api in replicas.api_servers]
    total = 500
    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda i: clients[i % 2].create(f"shared {i}", **SMALL).generation_id, range(total)))
    assert wait_all_final(replicas.database_url, ids, timeout_s=90) == {"COMPLETE": total}
    calls = start_calls(replicas, ids)
    assert set(calls) == set(ids)
    assert Counter(calls.values()) == {1: total}
    # Both replicas took part.
    per_replica = [
        sum(r.get("event") == "dispatched" for r in api.log_records()) - before
        for api, before in zip(replicas.api_servers, dispatched_before, strict=True)
    ]
    assert sum(per_replica) == total and min(per_replica) > 0


def test_kill_9_api_server_right_after_creates_the_other_replica_takes_over(replicas):
    victim, _survivor = replicas.api_servers
    api = replica(replicas, 0, "orphans")
    ids = create_many(api, 120, prefix="orphan")
    victim.kill()
    assert wait_all_final(replicas.database_url, ids, timeout_s=60) == {"COMPLETE": 120}
    assert set(start_calls(replicas, ids)) == set(ids)
    # Restarted, the victim serves again and work still flows.
    replicas.start_process(victim)
    again = replica(replicas, 0, "after restart")
    assert again.wait_final(again.create("after restart").generation_id).status == COMPLETE


def test_kill_9_every_api_server_then_restart(replicas):
    """No replica survives the crash: the restarted ones dispatch what was
    accepted before it, claimed or not."""
    api = replica(replicas, 0, "lone")
    ids = create_many(api, 120, prefix="lone")
    for server in replicas.api_servers:
        server.kill()
    for server in replicas.api_servers:
        replicas.start_process(server)
    assert wait_all_final(replicas.database_url, ids, timeout_s=60) == {"COMPLETE": 120}
    assert set(start_calls(replicas, ids)) == set(ids)


def test_results_wait_out_a_callback_server_outage(replicas):
    api = replica(replicas, 0, "outage")
    replicas.callback_server.stop()
    ids = create_many(api, 40)
    # Every job rendered and stored its files, then found nobody to take its result.
    wait_for(
        lambda: all(len(list((replicas.media_dir / i).glob("*"))) == 2 for i in ids),
        timeout_s=20,
        what="the AI to render every job",
    )
    assert rows.statuses(replicas.database_url, ids=ids) == {"PENDING": 40}
    replicas.start_process(replicas.callback_server)
    assert wait_all_final(replicas.database_url, ids, timeout_s=30) == {"COMPLETE": 40}
    assert rows.attempts(replicas.database_url, ids=ids) == [1] * 40


def test_dispatch_resumes_promptly_when_the_ai_comes_back(replicas):
    api = replica(replicas, 0, "ai outage")
    assert api.wait_final(api.create("before").generation_id).status == COMPLETE  # the channels are up
    replicas.mock_ai.kill()
    # Dispatches keep failing while the AI is down, so the channels keep
    # trying to reconnect, and gRPC's default backoff between tries grows.
    outage_ends = time.monotonic() + 8
    while time.monotonic() < outage_ends:
        api.create("during the outage")
        time.sleep(0.25)
    replicas.start_process(replicas.mock_ai)
    back = time.time()
    ids = [api.create(f"after {i}", **SMALL).generation_id for i in range(20)]
    wait_all_final(replicas.database_url, ids, timeout_s=30)
    after = [api.get(i) for i in ids]
    assert [g.status for g in after] == [COMPLETE] * len(ids)  # none FAILED by the gap
    # The first dispatch of each succeeded: every replica had reconnected.
    assert all(g.attempts == 1 for g in after)
    starts = [
        datetime.fromisoformat(r["ts"]).timestamp()
        for r in replicas.mock_ai.log_records(this_run=True)
        if r.get("event") == "start_generation" and r["generation_id"] in ids
    ]
    print(f"\nfirst dispatch {min(starts) - back:.2f} s after the AI was SERVING again")


# --- meshes of their own: the deadline for a result is what they are about ---


def test_kill_9_mock_ai_with_generations_in_flight(make_mesh):
    env = {
        **QUICK_RETRIES,
        "MOCK_AI_MIN_DELAY_S": "6",
        "MOCK_AI_MAX_DELAY_S": "8",
        "COMPLETION_DEADLINE_S": "10",
        "DISPATCH_MAX_ATTEMPTS": "4",
        # Calls cut off by the kill retry over about as long as a restart takes.
        "DISPATCH_BACKOFF_BASE_S": "0.5",
        "DISPATCH_BACKOFF_CAP_S": "2",
    }
    mesh = make_mesh(env=env, with_envoy=False)
    api = api_for(mesh)
    total = 250
    ids = create_many(api, total)
    wait_for(lambda: rows.held_by_the_ai(mesh.database_url, ids) >= 200, timeout_s=20, what="200 held by the AI")
    mesh.mock_ai.kill()
    mesh.start_process(mesh.mock_ai)
    counts = wait_all_final(mesh.database_url, ids, timeout_s=60)
    assert sum(counts.values()) == total and counts.get("PENDING", 0) == 0
    finished = [api.get(i) for i in ids]
    # None lost: each is COMPLETE, or FAILED with a reason (retries ran out
    # while the AI was down).
    assert [g for g in finished if g.status == generation_pb2.STATUS_FAILED and not g.failure_reason] == []
    assert counts.get("COMPLETE", 0) >= 0.9 * total, counts
    # The AI lost the jobs it held: they were dispatched again after the deadline.
    assert sum(1 for g in finished if g.attempts >= 2) >= 200
    print(f"kill -9 mock AI: {total} generations, outcome {counts}")


def test_results_held_through_a_callback_outage_all_arrive_with_the_newest_token(make_mesh):
    env = {
        **QUICK_RETRIES,
        "DISPATCH_POLL_INTERVAL_S": "0.1",
        "MOCK_AI_MIN_DELAY_S": "0.3",
        "MOCK_AI_MAX_DELAY_S": "0.6",
        # Dispatched again every second while the results cannot be delivered.
        "COMPLETION_DEADLINE_S": "1",
        "DISPATCH_MAX_ATTEMPTS": "12",
        "MOCK_AI_CALLBACK_TIMEOUT_S": "1",
        "MOCK_AI_CALLBACK_BACKOFF_CAP_S": "0.3",
    }
    mesh = make_mesh(env=env, with_envoy=False)
    api = api_for(mesh)
    mesh.callback_server.stop()
    total = 40
    ids = [api.create(f"held {i}", **SMALL).generation_id for i in range(total)]
    wait_for(
        lambda: min(rows.attempts(mesh.database_url, ids=ids)) >= 4,
        timeout_s=30,
        what="every generation dispatched again",
    )
    mesh.start_process(mesh.callback_server)
    counts = wait_all_final(mesh.database_url, ids, timeout_s=60)
    refused = [r for r in mesh.mock_ai.log_records() if r.get("event") == "callback refused"]
    print(f"\ncallback outage: {counts}; attempts up to {max(rows.attempts(mesh.database_url, ids=ids))}")
    assert counts == {"COMPLETE": total}
    assert {g.generation_id for g in map(api.get, ids)} == set(ids)
    # No result was thrown away for a token a newer dispatch replaced.
    assert refused == []
