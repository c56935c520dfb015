"""What the stores tell the api_servers, through PostgreSQL's NOTIFY, which
is delivered only when the transaction that sent it commits, so a listener
that reads then sees the change."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from psycopg import AsyncConnection

# A generation changed in a way a client can see (payload: its generationId).
CHANGES_CHANNEL = "generation_changed"
# The queue moved or a worker's room changed (no payload): dispatchers look
# again, and places in the queue are counted again.
QUEUE_CHANNEL = "queue_changed"


async def notify(conn: AsyncConnection, generation_ids: Sequence[uuid.UUID], *, queue: bool = False) -> None:
    if generation_ids:
        await conn.execute(
            "SELECT pg_notify(%s, id::text) FROM unnest(%s::uuid[]) AS id", (CHANGES_CHANNEL, list(generation_ids))
        )
    if queue:
        await conn.execute("SELECT pg_notify(%s, '')", (QUEUE_CHANNEL,))
