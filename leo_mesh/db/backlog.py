"""The dispatch backlog as the database holds it, for the backlog gauges."""

from __future__ import annotations

from dataclasses import dataclass

from leo_mesh.db.pool import Database


@dataclass(frozen=True)
class Backlog:
    due: int  # PENDING and due now: queued with a free slot to go to, or overdue on a worker
    in_flight: int  # PENDING on a worker: sent, held there, or running
    oldest_due_age_s: float  # 0: none due
    oldest_pending_age_s: float  # since its create; 0: none PENDING


# One scan of the PENDING rows. A queued generation counts as due only
# while a live worker serving its model and kind has room: waiting for a
# free slot is the queue working (leo_queue_depth and
# leo_queue_oldest_wait_seconds show it), not the dispatch lagging. On a
# worker, it is due when its start lease or completion deadline has passed.
_SQL = """
WITH room AS (
    SELECT w.models, w.kinds FROM ai_workers w
    WHERE NOT w.draining AND w."leaseExpiresAt" >= now()
      AND w.slots + w.prefetch > (
          SELECT count(*) FROM generations g WHERE g."workerId" = w.id AND g.status = 'PENDING'
      )
), due AS (
    SELECT g."nextAttemptAt" FROM generations g
    WHERE g.status = 'PENDING' AND g."nextAttemptAt" <= now()
      AND (g.phase <> 'QUEUED' OR EXISTS (
          SELECT 1 FROM room WHERE g."coreModel" = ANY(room.models) AND g.kind = ANY(room.kinds)
      ))
)
SELECT
    (SELECT count(*) FROM due),
    (SELECT count(*) FROM generations WHERE status = 'PENDING' AND phase <> 'QUEUED'),
    COALESCE((SELECT EXTRACT(EPOCH FROM now() - min("nextAttemptAt")) FROM due), 0),
    COALESCE((SELECT EXTRACT(EPOCH FROM now() - min("createdAt")) FROM generations WHERE status = 'PENDING'), 0)
"""


async def read(db: Database) -> Backlog:
    async with db.connection() as conn:
        cursor = await conn.execute(_SQL)
        due, in_flight, oldest_due, oldest_pending = await cursor.fetchone() or (0, 0, 0, 0)
    return Backlog(due, in_flight, max(0.0, float(oldest_due)), max(0.0, float(oldest_pending)))
