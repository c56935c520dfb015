"""The AI's side of a generation, for tests of what it sends back:
generations created and dispatched through the stores (so a test holds the
token a dispatch handed the AI), and results naming stored files."""

from __future__ import annotations

import asyncio
import uuid

from leo.callback.v1 import callback_pb2
from leo_mesh.db.generations import GenerationStore, NewGeneration
from leo_mesh.db.queue import QueueStore
from leo_mesh.rules import Model
from tests import rows
from tests.inprocess import signed_webhook_body

OWNER = "tester"


async def dispatched(store: GenerationStore, prompt: str = "p") -> tuple[uuid.UUID, str]:
    """A generation a worker holds, and the token its dispatch handed over."""
    row, _ = await store.create(NewGeneration(OWNER, prompt, Model.SDXL, 64, 64), max_pending=100)
    return row.generation_id, await redispatch(store, row.generation_id)


async def redispatch(store: GenerationStore, generation_id: uuid.UUID) -> str:
    """Dispatch the generation (again: back in the queue, as when its deadline
    passed) in a dispatch round, to a worker of the pool: a new token."""
    db = store._db
    await asyncio.to_thread(rows.ensure_worker, db.url)
    await asyncio.to_thread(rows.requeue, db.url, str(generation_id))
    queue = QueueStore(db, webhook_body=signed_webhook_body)
    planned = await queue.round(
        limit=1000, max_running_per_owner=1000, max_attempts=10, start_lease_s=60, worker_lease_s=3
    )
    (start,) = [s for s in planned.starts if s.row.generation_id == generation_id]
    return start.callback_token


def completed(
    generation_id, token: str, *names: str, prefix: str | None = None
) -> callback_pb2.CompleteGenerationRequest:
    """A result naming stored files by key (under the generation's prefix unless given another)."""
    under = f"{generation_id}/" if prefix is None else prefix
    assets = [
        callback_pb2.Asset(key=under + name, content_type="image/png", width=64, height=64, byte_size=100)
        for name in names
    ]
    return callback_pb2.CompleteGenerationRequest(
        generation_id=str(generation_id), callback_token=token, stored=callback_pb2.StoredAssets(assets=assets)
    )
