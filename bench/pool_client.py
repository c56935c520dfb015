"""A mesh with a pool of mock AI workers, and the bench's client of it:
gRPC to its api_server, SQL to its database, its services' logs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
import psycopg

from bench import stacks, verify
from bench.calls import SIDE
from leo.generation.v1 import generation_pb2, generation_pb2_grpc

WORKERS, SLOTS, PREFETCH = 3, 4, 1
POOL_ENV = {
    "MOCK_AI_SLOTS": str(SLOTS),
    "MOCK_AI_PREFETCH": str(PREFETCH),
    "MOCK_AI_IMAGES_PER_GENERATION": "1",
}
POLL_S = 0.02

PriorityValue = generation_pb2.Priority.ValueType
NORMAL = generation_pb2.PRIORITY_NORMAL
T = TypeVar("T")


@dataclass(frozen=True)
class Worker:
    id: uuid.UUID
    address: str
    slots: int
    prefetch: int


class Client:
    """One scenario's calls: gRPC to the mesh's api_server, SQL to its database."""

    def __init__(self, mesh: stacks.MeshTarget) -> None:
        self.mesh = mesh

    async def __aenter__(self) -> Client:
        self._channel = grpc.aio.insecure_channel(self.mesh.grpc_address)
        self._stub = generation_pb2_grpc.GenerationServiceStub(self._channel)
        self.db = await psycopg.AsyncConnection.connect(self.mesh.database_url, autocommit=True)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.db.close()
        await self._channel.close()

    async def create(
        self, headers: dict[str, str], count: int, *, priority: PriorityValue = NORMAL, in_flight: int = 32
    ) -> list[str]:
        request = generation_pb2.CreateGenerationRequest(
            prompt="bench: the queue", model=generation_pb2.MODEL_SDXL, width=SIDE, height=SIDE, priority=priority
        )
        gate = asyncio.Semaphore(in_flight)

        async def one() -> str:
            async with gate:
                reply = await self._stub.CreateGeneration(request, metadata=stacks.metadata(headers), timeout=30)
            return reply.generation.generation_id

        return list(await asyncio.gather(*(one() for _ in range(count))))

    async def cancel(self, headers: dict[str, str], generation_id: str) -> None:
        request = generation_pb2.CancelGenerationRequest(generation_id=generation_id)
        await self._stub.CancelGeneration(request, metadata=stacks.metadata(headers), timeout=30)

    async def cancel_pending(self, headers: dict[str, str], owner: str) -> None:
        """Cancel what the owner still has PENDING (a share's leftovers)."""
        pending = await self.query(
            "SELECT \"generationId\"::text FROM generations WHERE owner = %s AND status = 'PENDING'", (owner,)
        )
        gate = asyncio.Semaphore(32)

        async def one(generation_id: str) -> None:
            async with gate:
                try:
                    await self.cancel(headers, generation_id)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() is not grpc.StatusCode.FAILED_PRECONDITION:  # it became final meanwhile
                        raise

        await asyncio.gather(*(one(generation_id) for (generation_id,) in pending))

    async def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        cursor = await self.db.execute(sql, params)
        return await cursor.fetchall()

    async def until(self, what: str, check: Callable[[], Awaitable[T | None]], timeout_s: float) -> T:
        """Polls `check` until it returns something truthy; fails the figure after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not (found := await check()):
            if time.monotonic() > deadline:
                raise verify.FigureFailed(f"{self.mesh.label}: {what}: not within {timeout_s:g} s")
            await asyncio.sleep(POLL_S)
        return found

    async def workers(self, count: int = WORKERS) -> list[Worker]:
        """The pool's live workers, once `count` have joined."""

        async def joined() -> list[Worker] | None:
            rows = await self.query(
                'SELECT id, address, slots, prefetch FROM ai_workers WHERE "leaseExpiresAt" >= now() ORDER BY address'
            )
            return [Worker(*row) for row in rows] if len(rows) >= count else None

        return await self.until(f"{count} workers joined", joined, 30)

    async def statuses(self, owner: str) -> dict[str, int]:
        rows = await self.query("SELECT status::text, count(*) FROM generations WHERE owner = %s GROUP BY 1", (owner,))
        return dict(rows)

    async def settled(self, owners: Sequence[str], timeout_s: float = 120) -> dict[str, int]:
        """Until none of the owners' generations is PENDING; their statuses."""

        async def done() -> dict[str, int] | None:
            rows = await self.query(
                "SELECT status::text, count(*) FROM generations WHERE owner = ANY(%s) GROUP BY 1", (list(owners),)
            )
            statuses = dict(rows)
            return None if statuses.get("PENDING") else statuses

        return await self.until("every generation final", done, timeout_s)

    async def on_worker(self, worker: uuid.UUID) -> dict[str, list[str]]:
        """The generations on a worker, by phase."""
        rows = await self.query(
            'SELECT phase::text, "generationId"::text FROM generations WHERE "workerId" = %s AND status = \'PENDING\'',
            (worker,),
        )
        phases: dict[str, list[str]] = {}
        for phase, generation_id in rows:
            phases.setdefault(phase, []).append(generation_id)
        return phases


def pool_mesh(postgres: stacks.Postgres, run_dir: Path, label: str, env: dict[str, str]) -> stacks.MeshTarget:
    """A mesh of WORKERS mock AI workers (SLOTS slots, PREFETCH prefetch each), without Envoy."""
    return stacks.MeshTarget(
        postgres, run_dir, label=label, env={**POOL_ENV, **env}, with_envoy=False, ai_workers=WORKERS
    )


def job_delays(low_s: float, high_s: float | None = None) -> dict[str, str]:
    """The mock AI's job length: uniform from `low_s` to `high_s` seconds (`low_s` alone: exactly)."""
    return {"MOCK_AI_MIN_DELAY_S": f"{low_s:g}", "MOCK_AI_MAX_DELAY_S": f"{high_s if high_s is not None else low_s:g}"}


async def new_key(
    mesh: stacks.MeshTarget, owner: str, *, weight: int | None = None, max_priority: str | None = None
) -> dict[str, str]:
    """Headers of a new key of `owner` (MeshTarget.new_owner, off the event loop)."""
    return await asyncio.to_thread(mesh.new_owner, owner, weight=weight, max_priority=max_priority)


def log_records(mesh: stacks.MeshTarget, names: Iterable[str], event: str) -> list[dict]:
    """The lines of this run's logs of the named processes that tell of `event`."""
    processes = [p for p in mesh.mesh.processes() if p.name in set(names)]
    return [r for p in processes for r in p.log_records(this_run=True) if r.get("event") == event]


def worker_names(mesh: stacks.MeshTarget) -> list[str]:
    return [process.name for process in mesh.mesh.mock_ais]


def results_recorded(mesh: stacks.MeshTarget) -> list[str]:
    """Each result the callback_server gave a generation (not refused for its token)."""
    return [
        r["generation_id"]
        for r in log_records(mesh, ["callback_server"], "completion")
        if r.get("outcome") in ("applied", "duplicate", "conflict")
    ]
