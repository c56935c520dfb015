"""The dispatch backlog as the database holds it, for the backlog gauges."""

from __future__ import annotations

from dataclasses import dataclass

from leo_mesh.db.pool import Database


@dataclass(frozen=True)
class Backlog:
    due: int  # PENDING and due for (re)dispatch now
    in_flight: int  # PENDING, accepted or being sent, waiting for the callback
    oldest_due_age_s: float  # 0: none due
    oldest_pending_age_s: float  # since its create; 0: none PENDING


# One scan of the PENDING rows (the partial index generations_due_idx). A
# row dispatched and accepted has no lastError and its callback deadline
# ahead; one refused for now has its error and its retry ahead.
_SQL = """
SELECT
    count(*) FILTER (WHERE "nextAttemptAt" <= now()),
    count(*) FILTER (WHERE "nextAttemptAt" > now() AND attempts > 0 AND "lastError" IS NULL),
    COALESCE(EXTRACT(EPOCH FROM now() - min("nextAttemptAt") FILTER (WHERE "nextAttemptAt" <= now())), 0),
    COALESCE(EXTRACT(EPOCH FROM now() - min("createdAt")), 0)
FROM generations WHERE status = 'PENDING'
"""


async def read(db: Database) -> Backlog:
    async with db.connection() as conn:
        cursor = await conn.execute(_SQL)
        due, in_flight, oldest_due, oldest_pending = await cursor.fetchone() or (0, 0, 0, 0)
    return Backlog(due, in_flight, max(0.0, float(oldest_due)), max(0.0, float(oldest_pending)))
