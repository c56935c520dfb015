"""The queue's rows: the mesh's own queue and its pool of AI workers
(docs/dispatch.md), each figure against a target of its own.

- C1: a running job cancelled → its slot runs the next job; cancelled work
  leaves nothing (no result, no file).
- C2: slot utilisation while anything is queued.
- C3: a worker killed (SIGKILL) with jobs running → they run elsewhere.
- C4: a backlog ten times the completion deadline's worth: nothing fails,
  nothing is dispatched twice.
- S1: a light owner's one job behind a heavy owner's backlog.
- S2: two owners with key weights 3:1 share the pool 3:1.
- S3: a LOW backlog under a HIGH stream keeps its class's share.
- S4: the scheduling decision's CPU per dispatched job.

Each scenario runs on a mesh of its own on the bench's PostgreSQL: three
mock AI workers with 4 slots and 1 prefetch each (the defaults), jobs whose
length is the mock AI's delay (configuration). Times come from the rows
(`createdAt`, `startedAt`, `completedAt`, written with PostgreSQL's clock,
the machine's) and the bench's wall clock around its own calls.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench import stacks, stats, verify
from bench.params import Params
from bench.pool_client import (
    PREFETCH,
    SLOTS,
    WORKERS,
    Client,
    Worker,
    job_delays,
    log_records,
    new_key,
    pool_mesh,
    results_recorded,
    worker_names,
)
from bench.procstat import CpuMeter
from bench.report import Row, Side
from bench.targets import at_least, at_most, failed, judged, near
from leo.generation.v1 import generation_pb2
from leo_mesh import scheduling
from leo_mesh.media.store import generation_prefix
from leo_mesh.rules import Kind, Model

# "About a second": spread so that the slots of a worker do not all free at once.
SHORT_JOB_S = (0.5, 1.5)
# C4: the completion deadline, and the backlog in multiples of it.
DEADLINE_S = 2.5
BACKLOG_DEADLINES = 10
# S1: the heavy owner's queue while the light owner's jobs arrive.
HEAVY_QUEUED = 200
# S2: the key weights.
WEIGHTS = (3, 1)
# S3: HIGH arrivals, as a multiple of what the pool completes; LOW's share
# of the pool when both classes wait (one lane each).
HIGH_OVERLOAD = 1.5
LOW_SHARE = scheduling.CLASS_WEIGHTS[scheduling.Priority.LOW] / (
    scheduling.CLASS_WEIGHTS[scheduling.Priority.LOW] + scheduling.CLASS_WEIGHTS[scheduling.Priority.HIGH]
)
NOTE = (
    f"queue rows: a mesh of their own per scenario, {WORKERS} mock AI workers x {SLOTS} slots + {PREFETCH} prefetch "
    "(C1 also without prefetch), other settings at their defaults unless the row says; job lengths from the mock "
    "AI's delays; times from the rows' createdAt/startedAt/completedAt and the bench's clock around its calls"
)
# Before a share is measured, the pool settles into the mix this long.
WARMUP_S = 3.0


# --- what is computed from the samples and rows (pure) ---


@dataclass(frozen=True)
class Sample:
    """The pool at one moment, as the database has it."""

    queued: int
    # Per live worker: generations RUNNING on it, and its slots.
    running: dict[uuid.UUID, int]
    slots: dict[uuid.UUID, int]


def utilisation(samples: Iterable[Sample]) -> float | None:
    """The mean share of the slots running a job, over the samples taken
    while something was queued. A worker counts at most its slots (for a
    moment the rows may show a finished job still RUNNING beside the one
    that took its slot)."""
    shares = [
        sum(min(sample.running.get(worker, 0), slots) for worker, slots in sample.slots.items())
        / sum(sample.slots.values())
        for sample in samples
        if sample.queued and sample.slots
    ]
    return sum(shares) / len(shares) if shares else None


def slot_seconds(intervals: Iterable[tuple[float, float]], start: float, end: float) -> float:
    """Slot time the intervals (a job's start and end) took within [start, end]."""
    return sum(max(0.0, min(until, end) - max(since, start)) for since, until in intervals)


def rendered_after_cancel(
    cancelled: Iterable[str], results: Counter[str], deliveries: Counter[str], files: Callable[[str], bool]
) -> list[str]:
    """The cancelled generations that something was made of anyway: a
    result recorded or sent, or a file kept."""
    return [gid for gid in cancelled if results[gid] or deliveries[gid] or files(gid)]


def more_than_once(results: Iterable[str]) -> list[str]:
    """Generations given a result more than once."""
    return sorted(gid for gid, count in Counter(results).items() if count > 1)


# --- C1 ---


C1_GOAL = at_most(100, "p99 ≤ 100 ms")
C1_LEFT_GOAL = at_most(0, "0")


def cancel_rows(postgres: stacks.Postgres, run_dir: Path, params: Params) -> list[Row]:
    """C1, with the worker's prefetch (the default) and without it (the
    dispatcher fills the slot)."""
    rows = []
    for prefetch in (PREFETCH, 0):
        figure = f"cancel a running job → its slot runs the next, {WORKERS} workers x {SLOTS} slots"
        figure += f", prefetch {prefetch}"
        left_figure = f"cancelled jobs that left a result or a file (prefetch {prefetch})"
        env = {**job_delays(600), "MOCK_AI_PREFETCH": str(prefetch)}
        try:
            with pool_mesh(postgres, run_dir, f"queue-cancel-{prefetch}", env) as mesh:
                delays, cancels, left = asyncio.run(_cancels(mesh, params.queue_cancels))
        except verify.FigureFailed as exc:
            rows.append(failed("C1", figure, "ms", C1_GOAL.text, str(exc)))
            rows.append(failed("C1", left_figure, "gens", C1_LEFT_GOAL.text, str(exc)))
            continue
        p99 = stats.percentile(delays, 99)
        rows.append(
            judged(
                "C1",
                figure,
                "ms",
                C1_GOAL,
                Side(
                    value=p99,
                    p50_ms=stats.percentile(delays, 50),
                    p99_ms=p99,
                    detail=f"{len(delays)} cancels; from the cancel's answer to the next job's startedAt on that "
                    f"worker; max {max(delays):.0f} ms; the cancel call itself: p50 "
                    f"{stats.percentile(cancels, 50):.1f} ms",
                    runs=[{"delays_ms": delays, "cancel_call_ms": cancels}],
                ),
            )
        )
        rows.append(
            judged(
                "C1",
                left_figure,
                "gens",
                C1_LEFT_GOAL,
                Side(
                    value=len(left),
                    detail=f"of {len(delays)}: results recorded or sent, files in the media store",
                    runs=[{"left": left}],
                ),
            )
        )
    return rows


async def _cancels(mesh: stacks.MeshTarget, samples: int) -> tuple[list[float], list[float], list[str]]:
    """Cancels a running job on each worker in turn, each once the worker is
    full again; per cancel, ms from its answer to the next job's start on
    that worker (negative: the slot ran it before the answer arrived)."""
    owner = "bench-cancel"
    headers = await new_key(mesh, owner)
    delays, calls, cancelled = [], [], []
    async with Client(mesh) as client:
        workers = await client.workers()
        room = sum(w.slots + w.prefetch for w in workers)
        await client.create(headers, samples + 2 * room)
        for i in range(samples):
            worker = workers[i % len(workers)]

            async def full(worker: Worker = worker) -> list[str] | None:
                phases = await client.on_worker(worker.id)
                running = phases.get("RUNNING", [])
                held = phases.get("HELD", [])
                return running if len(running) == worker.slots and len(held) == worker.prefetch else None

            running: list[str] = await client.until(f"{worker.address} full", full, 15)
            victim = running[0]
            sent = time.time()
            await client.cancel(headers, victim)
            answered = time.time()
            cancelled.append(victim)

            async def next_start(worker: Worker = worker, before: list[str] = running) -> float | None:
                rows = await client.query(
                    'SELECT min(extract(epoch FROM "startedAt"))::float8 FROM generations'
                    ' WHERE "workerId" = %s AND phase = \'RUNNING\' AND NOT ("generationId"::text = ANY(%s))',
                    (worker.id, before),
                )
                return rows[0][0]

            started: float = await client.until("the next job's start", next_start, 15)
            delays.append((started - answered) * 1000)
            calls.append((answered - sent) * 1000)
        # Whatever a cancelled job might still do, it has had time to.
        await asyncio.sleep(2)
        # The rest too, so the workers' drain need not wait for them.
        await client.cancel_pending(headers, owner)
    media = mesh.mesh.media_dir
    left = rendered_after_cancel(
        cancelled,
        Counter(results_recorded(mesh)),
        Counter(r.get("generation_id") for r in log_records(mesh, worker_names(mesh), "callback delivered")),
        lambda gid: any((media / generation_prefix(gid)).glob("*")),
    )
    return delays, calls, left


# --- C2, C4, S1: one owner's backlog ---


C2_GOAL = at_least(95, "≥ 95%")
C4_FAILED_GOAL = at_most(0, "0")
C4_AGAIN_GOAL = at_most(0, "0")
S1_GOAL = at_most(2, "≤ 2 job lengths")


def backlog_rows(postgres: stacks.Postgres, run_dir: Path, params: Params) -> tuple[list[Row], float | None]:
    """C2, C4 and S1 from one run: a heavy owner's backlog worth ten
    completion deadlines, drained by the pool, while a light owner's single
    jobs arrive one at a time. Also the api_server's CPU ms per generation
    over that run (S4's yardstick)."""
    mean_s = sum(SHORT_JOB_S) / 2
    capacity = WORKERS * SLOTS / mean_s  # jobs a second
    jobs = math.ceil(BACKLOG_DEADLINES * DEADLINE_S * capacity)
    c2 = f"slot utilisation while anything is queued, {WORKERS} workers x {SLOTS} slots"
    c2 += f", jobs {SHORT_JOB_S[0]:g}-{SHORT_JOB_S[1]:g} s"
    c4_failed = f"{jobs} queued at once ({BACKLOG_DEADLINES}x COMPLETION_DEADLINE_S={DEADLINE_S:g} s of work): FAILED"
    c4_again = "the same backlog: generations dispatched more than once"
    s1 = f"a light owner's one job behind another's {HEAVY_QUEUED}+ queued: create → start"
    env = {**job_delays(*SHORT_JOB_S), "COMPLETION_DEADLINE_S": f"{DEADLINE_S:g}"}
    goals = [
        ("C2", c2, "%", C2_GOAL),
        ("C4", c4_failed, "gens", C4_FAILED_GOAL),
        ("C4", c4_again, "gens", C4_AGAIN_GOAL),
        ("S1", s1, "job lengths", S1_GOAL),
    ]
    try:
        with pool_mesh(postgres, run_dir, "queue-backlog", env) as mesh:
            found = asyncio.run(_backlog(mesh, jobs))
    except verify.FigureFailed as exc:
        return [failed(key, figure, unit, goal.text, str(exc)) for key, figure, unit, goal in goals], None
    busy = found["utilisation"]
    waits = [wait / mean_s for wait in found["light_waits_s"]]
    statuses = found["statuses"]
    rows = [
        judged(
            "C2",
            c2,
            "%",
            C2_GOAL,
            Side(
                value=busy * 100 if busy is not None else None,
                detail=f"{found['samples']} samples of the rows every 0.1 s over the {found['window_s']:.1f} s "
                f"anything was queued; api_server CPU {found['api_cpu_ms']:.2f} ms a generation",
                runs=[found],
            ),
        ),
        judged(
            "C4",
            c4_failed,
            "gens",
            C4_FAILED_GOAL,
            Side(value=statuses.get("FAILED", 0), detail=", ".join(f"{s} {n}" for s, n in sorted(statuses.items()))),
        ),
        judged(
            "C4",
            c4_again,
            "gens",
            C4_AGAIN_GOAL,
            Side(value=found["dispatched_again"], detail=f"attempts > 1; drained in {found['drain_s']:.1f} s"),
        ),
        judged(
            "S1",
            s1,
            "job lengths",
            S1_GOAL,
            Side(
                value=max(waits) if waits else None,
                detail=f"the worst of {len(waits)}, each arriving with {HEAVY_QUEUED}+ of the other owner's queued; "
                f"a job length = {mean_s:g} s; median {stats.median(waits) or 0:.2f}",
            ),
        ),
    ]
    return rows, found["api_cpu_ms"]


async def _sample(database_url: str, stop: asyncio.Event, every_s: float = 0.1) -> list[tuple[float, Sample]]:
    samples = []
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        while not stop.is_set():
            cursor = await conn.execute(
                "SELECT (SELECT count(*) FROM generations WHERE phase = 'QUEUED')::int, w.id, w.slots,"
                " (SELECT count(*) FROM generations g WHERE g.\"workerId\" = w.id AND g.phase = 'RUNNING')::int"
                ' FROM ai_workers w WHERE w."leaseExpiresAt" >= now()'
            )
            rows = await cursor.fetchall()
            queued = rows[0][0] if rows else 0
            samples.append(
                (time.time(), Sample(queued, {row[1]: row[3] for row in rows}, {row[1]: row[2] for row in rows}))
            )
            await asyncio.sleep(every_s)
    return samples


async def _backlog(mesh: stacks.MeshTarget, jobs: int) -> dict:
    heavy, light = "bench-heavy", "bench-light"
    heavy_headers, light_headers = await new_key(mesh, heavy), await new_key(mesh, light)
    async with Client(mesh) as client:
        await client.workers()
        meter = CpuMeter(mesh.process_roots()).start()
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample(mesh.database_url, stop))
        began = time.time()
        await client.create(heavy_headers, jobs)
        light_ids = []

        async def heavy_queued() -> int:
            return await _still_queued(client, heavy)

        while await heavy_queued() >= HEAVY_QUEUED:
            light_ids += await client.create(light_headers, 1)
            await asyncio.sleep(1.0)

        async def drained() -> bool | None:
            return not (await client.query("SELECT 1 FROM generations WHERE phase = 'QUEUED' LIMIT 1"))

        await client.until("the queue drained", drained, 20 * BACKLOG_DEADLINES * DEADLINE_S)
        drained_at = time.time()
        stop.set()
        samples = await sampler
        await client.settled([heavy, light])
        meter.stop()
        statuses = await client.statuses(heavy)
        (again,) = (await client.query("SELECT count(*) FROM generations WHERE owner = %s AND attempts > 1", (heavy,)))[
            0
        ]
        waits = [
            wait
            for (wait,) in await client.query(
                'SELECT extract(epoch FROM "startedAt" - "createdAt")::float8 FROM generations'
                ' WHERE "generationId"::text = ANY(%s)',
                (light_ids,),
            )
        ]
        if None in waits:
            raise verify.FigureFailed(f"a light owner's job never started: {await client.statuses(light)}")
    queued_at = [at for at, sample in samples if sample.queued]
    if not queued_at:
        raise verify.FigureFailed("no sample saw the queue")
    return {
        "utilisation": utilisation(sample for _, sample in samples),
        "samples": len(queued_at),
        "window_s": queued_at[-1] - queued_at[0],
        "api_cpu_ms": meter.groups_s["api_server"] * 1000 / (jobs + len(light_ids)),
        "statuses": statuses,
        "dispatched_again": again,
        "drain_s": drained_at - began,
        "light_waits_s": waits,
    }


# --- C3 ---


C3_MOVED_GOAL = at_most(5, "≤ 5 s")
C3_LOST_GOAL = at_most(0, "0")
C3_TWICE_GOAL = at_most(0, "0")


def worker_loss_rows(postgres: stacks.Postgres, run_dir: Path, params: Params) -> list[Row]:
    moved = "a worker killed (SIGKILL) with its jobs running → all of them running on another worker"
    lost = "its jobs lost"
    twice = "generations given a result twice"
    goals = [
        ("C3", moved, "s", C3_MOVED_GOAL),
        ("C3", lost, "gens", C3_LOST_GOAL),
        ("C3", twice, "gens", C3_TWICE_GOAL),
    ]
    try:
        with pool_mesh(postgres, run_dir, "queue-worker-loss", job_delays(8)) as mesh:
            found = asyncio.run(_worker_loss(mesh))
    except verify.FigureFailed as exc:
        return [failed(key, figure, unit, goal.text, str(exc)) for key, figure, unit, goal in goals]
    settings = "WORKER_LEASE_S, MOCK_AI_HEARTBEAT_INTERVAL_S and DISPATCH_POLL_INTERVAL_S at their defaults (3, 1, 1 s)"
    return [
        judged(
            "C3",
            moved,
            "s",
            C3_MOVED_GOAL,
            Side(
                value=found["moved_s"],
                detail=f"{found['killed_jobs']} jobs, from the kill to the last one's startedAt; {settings}",
                runs=[found],
            ),
        ),
        judged(
            "C3",
            lost,
            "gens",
            C3_LOST_GOAL,
            Side(value=found["lost"], detail=", ".join(f"{s} {n}" for s, n in sorted(found["statuses"].items()))),
        ),
        judged(
            "C3",
            twice,
            "gens",
            C3_TWICE_GOAL,
            Side(value=len(found["twice"]), detail="results the callback_server recorded, per generation"),
        ),
    ]


async def _worker_loss(mesh: stacks.MeshTarget) -> dict:
    owner = "bench-worker-loss"
    headers = await new_key(mesh, owner)
    async with Client(mesh) as client:
        workers = await client.workers()
        # Two workers' worth: spread over three, and room for one's jobs on the others.
        ids = await client.create(headers, 2 * SLOTS)

        async def placed() -> dict[str, uuid.UUID] | None:
            rows = await client.query(
                'SELECT "generationId"::text, "workerId" FROM generations WHERE owner = %s AND phase = \'RUNNING\'',
                (owner,),
            )
            return dict(rows) if len(rows) == len(ids) else None

        placement: dict[str, uuid.UUID] = await client.until("every job running", placed, 30)
        victim_id, _ = Counter(placement.values()).most_common(1)[0]
        victim = next(w for w in workers if w.id == victim_id)
        jobs = sorted(gid for gid, worker in placement.items() if worker == victim_id)
        process = mesh.mesh.mock_ais[[f"127.0.0.1:{port}" for port in mesh.mesh.ports.ai].index(victim.address)]
        killed_at = time.time()
        await asyncio.to_thread(process.kill)

        async def moved() -> list[float] | None:
            rows = await client.query(
                'SELECT extract(epoch FROM "startedAt")::float8 FROM generations'
                ' WHERE "generationId"::text = ANY(%s) AND phase = \'RUNNING\' AND "workerId" <> %s',
                (jobs, victim_id),
            )
            return [started for (started,) in rows] if len(rows) == len(jobs) else None

        starts: list[float] = await client.until("the killed worker's jobs running elsewhere", moved, 60)
        statuses = await client.settled([owner])
    results = results_recorded(mesh)
    return {
        "killed_jobs": len(jobs),
        "moved_s": max(starts) - killed_at,
        "statuses": statuses,
        "lost": len(ids) - statuses.get("COMPLETE", 0),
        "twice": more_than_once(gid for gid in results if gid in set(ids)),
    }


# --- S2, S3: shares of the pool ---


def share_rows(postgres: stacks.Postgres, run_dir: Path, params: Params) -> list[Row]:
    window = params.queue_window_s
    heavy, light = WEIGHTS
    s2 = f"two owners with backlogs, key weights {heavy}:{light}: their slot-seconds over {window:g} s"
    s3 = f"a LOW backlog under a HIGH stream ({HIGH_OVERLOAD:g}x the pool): LOW's completions over {window:g} s"
    s2_goal = near(heavy / light, 0.10, f"{heavy}:{light} ± 10%")
    share = f"1/{1 / LOW_SHARE:g}"
    s3_text = f"≥ 90% of {share} of the pool's rate"
    env = job_delays(*SHORT_JOB_S)
    try:
        with pool_mesh(postgres, run_dir, "queue-shares", env) as mesh:
            weighted = asyncio.run(_weighted(mesh, window))
            classes = asyncio.run(_classes(mesh, window))
    except verify.FigureFailed as exc:
        return [failed("S2", s2, "ratio", s2_goal.text, str(exc)), failed("S3", s3, "/s", s3_text, str(exc))]
    expected_rate = classes["pool_rate"] * LOW_SHARE
    s3_goal = at_least(0.9 * expected_rate, f"{s3_text}: ≥ {0.9 * expected_rate:.2f}/s")
    return [
        judged(
            "S2",
            s2,
            "ratio",
            s2_goal,
            Side(
                value=weighted["ratio"],
                detail=f"{weighted['heavy_s']:.0f} : {weighted['light_s']:.0f} slot-s; "
                f"jobs started {weighted['heavy_jobs']} : {weighted['light_jobs']}",
                runs=[weighted],
            ),
        ),
        judged(
            "S3",
            s3,
            "/s",
            s3_goal,
            Side(
                value=classes["low_rate"],
                detail=f"expected {expected_rate:.2f}/s: the pool's {classes['pool_rate']:.1f}/s x {share} "
                f"(CLASS_WEIGHTS LOW 1, HIGH 16); {classes['low_done']} of {classes['pool_done']} completions; "
                f"LOW's share of slot-seconds {classes['low_share']:.1%}",
                runs=[classes],
            ),
        ),
    ]


async def _intervals(client: Client, owner: str) -> list[tuple[float, float]]:
    return await client.query(
        'SELECT extract(epoch FROM "startedAt")::float8, extract(epoch FROM COALESCE("completedAt", now()))::float8'
        ' FROM generations WHERE owner = %s AND "startedAt" IS NOT NULL',
        (owner,),
    )


async def _completed_within(client: Client, owner: str, start: float, end: float) -> int:
    rows = await client.query(
        "SELECT count(*) FROM generations WHERE owner = %s AND status = 'COMPLETE'"
        ' AND "completedAt" BETWEEN to_timestamp(%s) AND to_timestamp(%s)',
        (owner, start, end),
    )
    return rows[0][0]


async def _still_queued(client: Client, owner: str) -> int:
    rows = await client.query("SELECT count(*) FROM generations WHERE owner = %s AND phase = 'QUEUED'", (owner,))
    return rows[0][0]


async def _weighted(mesh: stacks.MeshTarget, window_s: float) -> dict:
    heavy_weight, light_weight = WEIGHTS
    heavy, light = "bench-weight-3", "bench-weight-1"
    heavy_headers = await new_key(mesh, heavy, weight=heavy_weight)
    light_headers = await new_key(mesh, light, weight=light_weight)
    async with Client(mesh) as client:
        workers = await client.workers()
        capacity = sum(w.slots for w in workers) / (sum(SHORT_JOB_S) / 2)
        total = capacity * (WARMUP_S + window_s) * 1.5 + sum(w.slots + w.prefetch for w in workers)
        share = heavy_weight / (heavy_weight + light_weight)
        await asyncio.gather(
            client.create(heavy_headers, math.ceil(total * share)),
            client.create(light_headers, math.ceil(total * (1 - share))),
        )
        await asyncio.sleep(WARMUP_S)
        start = time.time()
        await asyncio.sleep(window_s)
        end = time.time()
        left = {owner: await _still_queued(client, owner) for owner in (heavy, light)}
        heavy_s = slot_seconds(await _intervals(client, heavy), start, end)
        light_s = slot_seconds(await _intervals(client, light), start, end)
        jobs = {
            owner: (
                await client.query(
                    'SELECT count(*) FROM generations WHERE owner = %s AND "startedAt" BETWEEN to_timestamp(%s)'
                    " AND to_timestamp(%s)",
                    (owner, start, end),
                )
            )[0][0]
            for owner in (heavy, light)
        }
        await client.cancel_pending(heavy_headers, heavy)
        await client.cancel_pending(light_headers, light)
        await client.settled([heavy, light])
    if not all(left.values()):
        raise verify.FigureFailed(f"a backlog ran dry before the window ended: still queued {left}")
    return {
        "ratio": heavy_s / light_s if light_s else None,
        "heavy_s": heavy_s,
        "light_s": light_s,
        "heavy_jobs": jobs[heavy],
        "light_jobs": jobs[light],
        "queued_at_end": left,
    }


async def _classes(mesh: stacks.MeshTarget, window_s: float) -> dict:
    low, high = "bench-low", "bench-high"
    low_headers = await new_key(mesh, low)
    high_headers = await new_key(mesh, high, max_priority="high")
    async with Client(mesh) as client:
        workers = await client.workers()
        capacity = sum(w.slots for w in workers) / (sum(SHORT_JOB_S) / 2)
        await client.create(
            low_headers,
            math.ceil(capacity * LOW_SHARE * (WARMUP_S + window_s) * 3) + 20,
            priority=generation_pb2.PRIORITY_LOW,
        )
        began = time.time()
        stop_at = began + WARMUP_S + window_s
        stream_rate = HIGH_OVERLOAD * capacity
        sent = 0

        async def stream() -> None:
            nonlocal sent
            while time.time() < stop_at:
                due = math.floor((time.time() - began) * stream_rate) + 1
                if due > sent:
                    await client.create(high_headers, due - sent, priority=generation_pb2.PRIORITY_HIGH)
                    sent = due
                await asyncio.sleep(0.05)

        streaming = asyncio.create_task(stream())
        await asyncio.sleep(WARMUP_S)
        start = time.time()
        await asyncio.sleep(window_s)
        end = time.time()
        await streaming
        left = {owner: await _still_queued(client, owner) for owner in (low, high)}
        low_s = slot_seconds(await _intervals(client, low), start, end)
        high_s = slot_seconds(await _intervals(client, high), start, end)
        low_done = await _completed_within(client, low, start, end)
        high_done = await _completed_within(client, high, start, end)
        await client.cancel_pending(low_headers, low)
        await client.cancel_pending(high_headers, high)
        await client.settled([low, high])
    if not all(left.values()):
        raise verify.FigureFailed(f"a class ran out of queued work before the window ended: still queued {left}")
    return {
        "low_share": low_s / (low_s + high_s) if low_s + high_s else 0.0,
        "low_rate": low_done / (end - start),
        "pool_rate": (low_done + high_done) / (end - start),
        "low_done": low_done,
        "pool_done": low_done + high_done,
        "low_slot_s": low_s,
        "high_slot_s": high_s,
        "high_sent": sent,
        "queued_at_end": left,
    }


# --- S4 ---


# S4: the decision's share of what a generation costs the api_server.
DECISION_SHARE = 0.05


def decision_rows(params: Params, api_cpu_ms: float | None) -> list[Row]:
    """S4: scheduling.assign (and the virtual time after it) on a round's
    snapshot, in this process, CPU time per generation it hands out: the
    bench's pool, and a large one filling a whole batch. The target is a
    small share of the api_server's CPU per generation in the backlog run
    (C2), which includes each generation's create, dispatch round and
    result."""
    rows = []
    for workers, figure in (
        (WORKERS, f"a round's decision, {WORKERS} workers x {SLOTS}+{PREFETCH} free, 20 owners queued"),
        (100, f"a round's decision, 100 workers x {SLOTS}+{PREFETCH} free, a batch of 100, 20 owners queued"),
    ):
        per_job_us, handed, rounds = _decision_cost(workers, batch=100, owners=20, repeat_s=params.queue_decision_s)
        side = Side(value=per_job_us, detail=f"{handed} handed out a round, {rounds:,} rounds; time.process_time")
        if api_cpu_ms is None:
            target = f"≤ {DECISION_SHARE:.0%} of the api_server's CPU a generation (not measured: C2 failed)"
            rows.append(Row("S4", figure, "µs CPU/gen", ours=side, target=target))
            continue
        limit_us = DECISION_SHARE * api_cpu_ms * 1000
        goal = at_most(limit_us, f"≤ {limit_us:.0f} µs: {DECISION_SHARE:.0%} of the api_server's {api_cpu_ms:.2f} ms")
        rows.append(judged("S4", figure, "µs CPU/gen", goal, side))
    return rows


def _decision_cost(workers: int, *, batch: int, owners: int, repeat_s: float) -> tuple[float, int, int]:
    """CPU µs per generation handed out by one round's decision, as the
    round makes it: candidates read ahead (4 x the room + 16), each
    owner below its cap, every worker serving every model and kind."""
    rng = random.Random(20)
    pool = [
        scheduling.Worker(uuid.UUID(int=i + 1), SLOTS, PREFETCH, frozenset(Model), frozenset(Kind), holding=0)
        for i in range(workers)
    ]
    wanted = min(batch, sum(w.slots + w.prefetch for w in pool))
    models = list(Model)
    candidates = [
        scheduling.Candidate(uuid.uuid4(), f"owner-{rng.randrange(owners)}", rng.choice(models), Kind.IMAGE, i * 0.1)
        for i in range(wanted * 4 + 16)
    ]
    on_workers = {f"owner-{i}": rng.randrange(4) for i in range(owners)}
    rounds, handed, spent = 0, 0, 0.0
    while spent < repeat_s:
        began = time.process_time()
        made = scheduling.assign(candidates, pool, on_workers, 32, limit=wanted)
        scheduling.virtual_time_after(0.0, (a.candidate.tag for a in made))
        spent += time.process_time() - began
        rounds += 1
        handed = len(made)
    return spent / rounds / handed * 1e6, handed, rounds


# --- all of them ---


def queue_rows(postgres: stacks.Postgres, run_dir: Path, params: Params, progress: Callable[[Row], None]) -> list[Row]:
    rows: list[Row] = []

    def add(new: list[Row]) -> None:
        for row in new:
            rows.append(row)
            progress(row)

    add(cancel_rows(postgres, run_dir, params))
    backlog, api_cpu_ms = backlog_rows(postgres, run_dir, params)
    add(backlog)
    add(worker_loss_rows(postgres, run_dir, params))
    add(share_rows(postgres, run_dir, params))
    add(decision_rows(params, api_cpu_ms))
    return rows
