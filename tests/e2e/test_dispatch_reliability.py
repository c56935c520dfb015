"""Dispatch never loses a generation on real processes: kill -9 of an
api_server (a replica, or all of them) and of an AI worker mid-job, a worker
that hangs and comes back, a worker told to stop, outages of the callback
server and of the whole pool; two replicas dispatch each generation exactly
once and never to two workers. Short delays come from settings. Decisions
that need no crash (a job refused, attempts used up, deadlines), in process:
tests/integration/test_dispatch.py and tests/integration/test_queue.py.

Most tests share one mesh of two api_server replicas and two workers; each
counts only the generations it made, and leaves every process running."""

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
    "MAX_RUNNING_PER_OWNER": "1000",  # and run them all at once
    "MOCK_AI_SLOTS": "500",
    "DISPATCH_BACKOFF_BASE_S": "0.05",
    "DISPATCH_BACKOFF_CAP_S": "0.2",
    "DISPATCH_POLL_INTERVAL_S": "0.2",
    "DISPATCH_RPC_TIMEOUT_S": "2",
    # A worker that stops heartbeating is gone after 3 s (the default): a
    # shorter lease counts a worker whose event loop is busy on a loaded
    # machine as gone.
    "MOCK_AI_HEARTBEAT_INTERVAL_S": "0.2",
    "MOCK_AI_MIN_DELAY_S": "0.2",
    "MOCK_AI_MAX_DELAY_S": "0.5",
    "MOCK_AI_CALLBACK_BACKOFF_BASE_S": "0.05",
    "MOCK_AI_CALLBACK_BACKOFF_CAP_S": "0.5",
}
SMALL = {"width": 64, "height": 64}
COMPLETE = generation_pb2.STATUS_COMPLETE


@pytest.fixture(scope="module")
def replicas(make_mesh):
    return make_mesh(env=QUICK_RETRIES, api_replicas=2, ai_workers=2, with_envoy=False)


def replica(mesh, index: int, owner: str = "tester") -> Api:
    return api_for(mesh, owner, address=f"127.0.0.1:{mesh.ports.api[index]}")


def create_many(api: Api, count: int, prefix: str = "p") -> list[str]:
    with ThreadPoolExecutor(16) as pool:
        # Small images: these tests are about dispatch, not the mock AI's renderer.
        return list(pool.map(lambda i: api.create(f"{prefix} {i}", **SMALL).generation_id, range(count)))


def workers_gone(mesh) -> int:
    """How many times an api_server found workers gone."""
    return sum(r.get("event", "").startswith("AI workers gone") for api in mesh.api_servers for r in api.log_records())


def wait_all_final(database_url: str, ids: list[str], timeout_s: float) -> dict[str, int]:
    return wait_for(
        lambda: (counts := rows.statuses(database_url, ids=ids)).get("PENDING", 0) == 0 and counts,
        timeout_s=timeout_s,
        interval_s=0.25,
        what="every generation to reach a final state",
    )


def started_on(mesh, ids: list[str]) -> dict[str, set[int]]:
    """For each generation, the workers (by index) that took a job for it."""
    wanted, found = set(ids), {}
    for index, worker in enumerate(mesh.mock_ais):
        for record in worker.log_records():
            if record.get("event") == "job taken" and record["new"] and record["generation_id"] in wanted:
                found.setdefault(record["generation_id"], set()).add(index)
    return found


def jobs_taken(mesh, ids: list[str]) -> Counter:
    """How many jobs the workers took for each generation (a start repeated
    to a worker that holds its job takes none)."""
    wanted = set(ids)
    return Counter(
        r["generation_id"]
        for worker in mesh.mock_ais
        for r in worker.log_records()
        if r.get("event") == "job taken" and r["new"] and r["generation_id"] in wanted
    )


def delivered(mesh, ids: list[str]) -> Counter:
    """How many results of each generation a callback server took."""
    wanted = set(ids)
    return Counter(
        r["generation_id"]
        for worker in mesh.mock_ais
        for r in worker.log_records()
        if r.get("event") == "callback delivered" and r["generation_id"] in wanted
    )


def test_two_api_servers_send_each_generation_exactly_once(replicas):
    clients = [replica(replicas, index, "shared") for index in range(2)]
    dispatched_before = [sum(r.get("event") == "dispatched" for r in api.log_records()) for api in replicas.api_servers]
    total = 500
    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda i: clients[i % 2].create(f"shared {i}", **SMALL).generation_id, range(total)))
    assert wait_all_final(replicas.database_url, ids, timeout_s=90) == {"COMPLETE": total}
    calls = jobs_taken(replicas, ids)
    assert set(calls) == set(ids)
    assert Counter(calls.values()) == {1: total}
    # Never two workers for one job; both workers had their share.
    where = started_on(replicas, ids)
    assert all(len(workers) == 1 for workers in where.values())
    assert set().union(*where.values()) == {0, 1}
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
    assert set(jobs_taken(replicas, ids)) == set(ids)
    assert all(len(workers) == 1 for workers in started_on(replicas, ids).values())
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
    assert set(jobs_taken(replicas, ids)) == set(ids)


def test_dispatch_resumes_promptly_when_the_pool_comes_back(replicas):
    """Every worker is killed: what is created meanwhile waits in the
    mesh's queue (a busy or absent pool never fails a generation), and runs
    as soon as restarted workers join."""
    api = replica(replicas, 0, "pool outage")
    assert api.wait_final(api.create("before").generation_id).status == COMPLETE
    for worker in replicas.mock_ais:
        worker.kill()
    during = [api.create(f"during {i}", **SMALL).generation_id for i in range(20)]
    time.sleep(4)  # past every lease: nothing to send them to
    assert rows.statuses(replicas.database_url, ids=during) == {"PENDING": 20}
    # Queued, or sent to a worker in the moment before its death was known
    # (kept there until it counts as gone): none running, none failed.
    assert set(rows.phases(replicas.database_url, during)) <= {"QUEUED", "STARTING"}
    for worker in replicas.mock_ais:
        replicas.start_process(worker)
    back = time.time()
    ids = [api.create(f"after {i}", **SMALL).generation_id for i in range(20)]
    assert wait_all_final(replicas.database_url, during + ids, timeout_s=30) == {"COMPLETE": 40}
    # Each ran once: a start repeated to the worker that holds it takes no second job.
    assert jobs_taken(replicas, during + ids) == Counter({g: 1 for g in during + ids})
    starts = [
        datetime.fromisoformat(r["ts"]).timestamp()
        for worker in replicas.mock_ais
        for r in worker.log_records(this_run=True)
        if r.get("event") == "start_generation" and r["generation_id"] in ids
    ]
    print(f"\nfirst start {min(starts) - back:.2f} s after the workers were started again")


# --- two workers whose jobs last a few seconds: a worker's faults mid-job ---


@pytest.fixture(scope="module")
def pool(make_mesh):
    # A worker told to stop finishes its jobs (the default drain; tests' meshes have none).
    env = {**QUICK_RETRIES, "MOCK_AI_MIN_DELAY_S": "2", "MOCK_AI_MAX_DELAY_S": "3", "MOCK_AI_DRAIN_TIMEOUT_S": "60"}
    return make_mesh(env=env, ai_workers=2, with_envoy=False)


def test_kill_9_of_a_worker_mid_job_runs_its_jobs_on_the_other(pool):
    """Its running jobs are back in the queue within about a lease and run on
    the other worker: none lost, none final twice."""
    api = api_for(pool, "worker killed")
    victim = pool.mock_ais[0]
    ids = create_many(api, 60, prefix="killed")
    wait_for(lambda: len(started_on(pool, ids)) == 60, timeout_s=20, what="every job started")
    on_victim = [g for g, workers in started_on(pool, ids).items() if workers == {0}]
    victim.kill()
    killed = time.monotonic()
    assert wait_all_final(pool.database_url, ids, timeout_s=60) == {"COMPLETE": 60}
    print(f"\nkill -9 of a worker: {len(on_victim)} of its jobs, all final {time.monotonic() - killed:.1f} s after")
    assert on_victim and all(started_on(pool, on_victim)[g] == {0, 1} for g in on_victim)
    assert rows.attempts(pool.database_url, ids=on_victim) == [2] * len(on_victim)
    assert max(delivered(pool, ids).values()) == 1
    pool.start_process(victim)


def test_a_worker_that_hangs_and_comes_back_counts_once(pool):
    """SIGSTOP: it stops heartbeating, its jobs go to the other worker;
    SIGCONT: its late results are refused (their tokens were replaced) or,
    if first, accepted; each generation ends once."""
    api = api_for(pool, "worker hung")
    hung = pool.mock_ais[1]
    ids = create_many(api, 40, prefix="hung")
    wait_for(lambda: len(started_on(pool, ids)) == 40, timeout_s=20, what="every job started")
    hung.pause()
    try:
        wait_for(
            lambda: all((1 in w and len(w) == 2) or w == {0} for w in started_on(pool, ids).values()),
            timeout_s=30,
            what="its jobs started on the other worker",
        )
    finally:
        hung.resume()
    assert wait_all_final(pool.database_url, ids, timeout_s=60) == {"COMPLETE": 40}
    assert max(delivered(pool, ids).values()) == 1
    time.sleep(1)  # its heartbeat after the pause: told to drop what it held
    assert hung.running()


def test_a_worker_told_to_stop_finishes_what_it_runs_and_takes_nothing_new(pool):
    api = api_for(pool, "worker drained")
    leaving = pool.mock_ais[0]
    ids = create_many(api, 40, prefix="drained")
    wait_for(lambda: len(started_on(pool, ids)) == 40, timeout_s=20, what="every job started")
    on_leaving = {g for g, workers in started_on(pool, ids).items() if workers == {0}}
    leaving.terminate()
    assert leaving.proc.wait(30) == 0
    after = create_many(api, 10, prefix="after the drain")
    assert wait_all_final(pool.database_url, ids + after, timeout_s=60) == {"COMPLETE": 50}
    # What it ran, it finished: once, on the first attempt; nothing new reached it.
    assert on_leaving and rows.attempts(pool.database_url, ids=on_leaving) == [1] * len(on_leaving)
    assert all(workers == {1} for workers in started_on(pool, after).values())
    assert max(delivered(pool, ids).values()) == 1
    pool.start_process(leaving)


def test_results_wait_out_a_callback_server_outage(pool):
    """The workers cannot heartbeat nor deliver while the callback server is
    away: every lease ends together, so no worker counts as gone; they keep
    their jobs and their results, which count when it is back: no job is
    run twice."""
    api = api_for(pool, "outage")
    gone_before = workers_gone(pool)
    ids = create_many(api, 40, prefix="outage")
    wait_for(lambda: len(started_on(pool, ids)) == 40, timeout_s=20, what="every job started")
    pool.callback_server.stop()
    # Every job rendered and stored its files, then found nobody to take its result.
    wait_for(
        lambda: all(len(list((pool.media_dir / i).glob("*"))) == 2 for i in ids),
        timeout_s=20,
        what="the workers to render every job",
    )
    time.sleep(2)  # leases end meanwhile
    assert rows.statuses(pool.database_url, ids=ids) == {"PENDING": 40}
    pool.start_process(pool.callback_server)
    assert wait_all_final(pool.database_url, ids, timeout_s=30) == {"COMPLETE": 40}
    # No job ran twice (a start unanswered meanwhile is repeated to the worker
    # that holds it, which takes no second job), and no worker counted as gone.
    assert jobs_taken(pool, ids) == Counter({g: 1 for g in ids})
    assert workers_gone(pool) == gone_before
