"""The AI's side of a generation, for tests of what it sends back:
generations created and dispatched through the store (so a test holds the
token a dispatch handed the AI), and results naming stored files."""

from __future__ import annotations

import uuid

from leo.callback.v1 import callback_pb2
from leo_mesh.db.generations import GenerationStore, NewGeneration
from leo_mesh.rules import Model

OWNER = "tester"


async def dispatched(store: GenerationStore, prompt: str = "p") -> tuple[uuid.UUID, str]:
    """A generation the AI holds, and the token its dispatch handed over."""
    row, _ = await store.create(NewGeneration(OWNER, prompt, Model.SDXL, 64, 64), max_pending=100)
    return row.generation_id, await redispatch(store, row.generation_id)


async def redispatch(store: GenerationStore, generation_id: uuid.UUID) -> str:
    """Dispatch the generation again (its deadline passed): a new token."""
    async with store._db.connection() as conn:
        await conn.execute('UPDATE generations SET "nextAttemptAt" = now() WHERE "generationId" = %s', (generation_id,))
    claimed, _ = await store.claim_due(limit=10, lease_s=60, max_attempts=10)
    (item,) = [c for c in claimed if c.row.generation_id == generation_id]
    return item.callback_token


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
