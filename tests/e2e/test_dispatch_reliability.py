"""Dispatch never loses a generation: retries, deadlines, crashes, replicas.

Real processes on a real database; short delays come from settings.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psycopg

from leo.generation.v1 import generation_pb2
from tests.clients import Api, api_for, statuses, wait_for

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


def create_many(api: Api, count: int, prefix: str = "p") -> list[str]:
    with ThreadPoolExecutor(16) as pool:
        # Small images: these tests are about dispatch, not the mock AI's renderer.
        return list(pool.map(lambda i: api.create(f"{prefix} {i}", **SMALL).generation_id, range(count)))


def wait_all_final(database_url: str, timeout_s: float) -> dict[str, int]:
    return wait_for(
        lambda: (counts := statuses(database_url)).get("PENDING", 0) == 0 and counts,
        timeout_s=timeout_s,
        interval_s=0.25,
        what="every generation to reach a final state",
    )


def start_calls(mesh) -> Counter:
    return Counter(r["generation_id"] for r in mesh.mock_ai.log_records() if r.get("event") == "start_generation")


def test_unavailable_twice_then_accepted(make_mesh):
    mesh = make_mesh(env={**QUICK_RETRIES, "MOCK_AI_START_FAILURES_PER_GENERATION": "2"}, with_envoy=False)
    api = api_for(mesh)
    generation_id = api.create("retry me").generation_id
    done = api.wait_final(generation_id)
    assert done.status == generation_pb2.STATUS_COMPLETE
    assert done.attempts == 3
    retries = [
        r
        for r in mesh.api_servers[0].log_records()
        if r.get("event") == "dispatch retry" and r["generation_id"] == generation_id
    ]
    assert [r["attempt"] for r in retries] == [1, 2]
    for retry in retries:
        assert retry["error"].startswith("UNAVAILABLE") and 0 <= retry["delay_s"] <= 0.2
    assert start_calls(mesh)[generation_id] == 3


def test_always_unavailable_fails_after_max_attempts(make_mesh):
    env = {**QUICK_RETRIES, "MOCK_AI_START_FAILURE_RATE": "1", "DISPATCH_MAX_ATTEMPTS": "4"}
    mesh = make_mesh(env=env, with_envoy=False)
    api = api_for(mesh)
    done = api.wait_final(api.create("never").generation_id)
    assert done.status == generation_pb2.STATUS_FAILED
    assert done.attempts == 4
    assert done.failure_reason.startswith("the AI backend could not be reached after 4 attempts")
    assert "UNAVAILABLE" in done.failure_reason
    with psycopg.connect(mesh.database_url) as conn:
        last_error, due = conn.execute('SELECT "lastError", "nextAttemptAt" FROM generations').fetchone()
    assert last_error.startswith("UNAVAILABLE") and due is None


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

    def held_by_the_ai() -> int:
        with psycopg.connect(mesh.database_url) as conn:
            return conn.execute(
                "SELECT count(*) FROM generations WHERE attempts = 1 AND status = 'PENDING'"
                ' AND "lastError" IS NULL AND "nextAttemptAt" > now()'
            ).fetchone()[0]

    wait_for(lambda: held_by_the_ai() >= 200, timeout_s=20, what="200 generations held by the AI")
    mesh.mock_ai.kill()
    mesh.start_process(mesh.mock_ai)
    counts = wait_all_final(mesh.database_url, timeout_s=60)
    assert sum(counts.values()) == total and counts.get("PENDING", 0) == 0
    finished = [api.get(i) for i in ids]
    # None lost: each is COMPLETE, or FAILED with a reason (retries ran out
    # while the AI was down).
    assert [g for g in finished if g.status == generation_pb2.STATUS_FAILED and not g.failure_reason] == []
    assert counts.get("COMPLETE", 0) >= 0.9 * total, counts
    # The AI lost the jobs it held: they were dispatched again after the deadline.
    assert sum(1 for g in finished if g.attempts >= 2) >= 200
    print(f"kill -9 mock AI: {total} generations, outcome {counts}")


def test_callback_server_down_for_a_while(make_mesh):
    env = {**QUICK_RETRIES, "COMPLETION_DEADLINE_S": "60"}
    mesh = make_mesh(env=env, with_envoy=False)
    api = api_for(mesh)
    mesh.callback_server.stop()
    ids = create_many(api, 40)
    # The AI finishes its jobs while nobody takes its callbacks.
    wait_for(
        lambda: sum(1 for r in mesh.mock_ai.log_records() if r.get("event") == "start_generation") >= 40,
        timeout_s=10,
        what="the AI to accept the jobs",
    )
    time.sleep(2)
    assert statuses(mesh.database_url) == {"PENDING": 40}
    mesh.start_process(mesh.callback_server)
    counts = wait_all_final(mesh.database_url, timeout_s=30)
    assert counts == {"COMPLETE": 40}
    assert all(api.get(i).attempts == 1 for i in ids)


def test_two_api_servers_send_each_generation_exactly_once(make_mesh):
    mesh = make_mesh(env=QUICK_RETRIES, api_replicas=2, with_envoy=False)
    clients = [api_for(mesh, address=f"127.0.0.1:{port}") for port in mesh.ports.api]
    total = 500
    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda i: clients[i % 2].create(f"shared {i}", **SMALL).generation_id, range(total)))
    counts = wait_all_final(mesh.database_url, timeout_s=90)
    assert counts == {"COMPLETE": total}
    calls = start_calls(mesh)
    assert set(calls) == set(ids)
    assert Counter(calls.values()) == {1: total}
    # Both replicas took part.
    per_replica = [sum(1 for r in api.log_records() if r.get("event") == "dispatched") for api in mesh.api_servers]
    assert sum(per_replica) == total and min(per_replica) > 0


def test_kill_9_api_server_right_after_creates(make_mesh):
    env = {**QUICK_RETRIES, "DISPATCH_RPC_TIMEOUT_S": "1"}
    mesh = make_mesh(env=env, api_replicas=2, with_envoy=False)
    victim, _survivor = mesh.api_servers
    api = api_for(mesh, address=f"127.0.0.1:{mesh.ports.api[0]}")
    ids = create_many(api, 120, prefix="orphan")
    victim.kill()
    counts = wait_all_final(mesh.database_url, timeout_s=60)
    assert counts == {"COMPLETE": 120}
    assert set(start_calls(mesh)) >= set(ids)
    # Restarted, the victim serves again and work still flows.
    mesh.start_process(victim)
    again = api_for(mesh, address=f"127.0.0.1:{mesh.ports.api[0]}")
    assert again.wait_final(again.create("after restart").generation_id).status == generation_pb2.STATUS_COMPLETE


def test_kill_9_lone_api_server_then_restart(make_mesh):
    env = {**QUICK_RETRIES, "DISPATCH_RPC_TIMEOUT_S": "1"}
    mesh = make_mesh(env=env, with_envoy=False)
    (server,) = mesh.api_servers
    api = api_for(mesh)
    ids = create_many(api, 120, prefix="lone")
    server.kill()
    mesh.start_process(server)
    counts = wait_all_final(mesh.database_url, timeout_s=60)
    assert counts == {"COMPLETE": 120}
    assert set(start_calls(mesh)) >= set(ids)
