"""The queue and the pool of AI workers in numbers, for the queue gauges
(leo_mesh.telemetry.queue): one query, on a connection of its own.

Synchronous on purpose: it runs when /metrics is scraped, in the metrics
server's thread, which may be the supervising process of the api_server's
worker processes (no event loop, no pool there). A scrape waits at most
READ_TIMEOUT_S for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from leo_mesh.db.urls import libpq_url
from leo_mesh.rules import Kind, Model
from leo_mesh.scheduling import Priority

READ_TIMEOUT_S = 3


@dataclass(frozen=True)
class Pool:
    """The live workers that serve the same models and kinds."""

    busy: int  # slots running (or about to run) a generation
    free: int  # slots that would take one now (draining workers offer none)


@dataclass(frozen=True)
class QueueMetrics:
    # QUEUED generations by model, kind and priority (absent: none).
    depth: dict[tuple[Model, Kind, Priority], int] = field(default_factory=dict)
    # Seconds since the create of the oldest QUEUED one, by model and kind (absent: none).
    oldest_wait_s: dict[tuple[Model, Kind], float] = field(default_factory=dict)
    # Live workers by (models, kinds): each a sorted, comma-separated list of names.
    pools: dict[tuple[str, str], Pool] = field(default_factory=dict)
    # Generations on workers (starting, held or running) by owner (absent: none).
    owners_running: dict[str, int] = field(default_factory=dict)


# Three parts, one round trip. A worker's generations (any phase on it)
# fill its slots first, then its prefetch: busy = least(slots, on it).
_SQL = """
SELECT 'queued', "coreModel"::text, kind::text, priority, count(*)::float8,
       extract(epoch FROM now() - min("createdAt"))::float8
  FROM generations WHERE phase = 'QUEUED' GROUP BY 2, 3, 4
UNION ALL
SELECT 'pool',
       array_to_string(ARRAY(SELECT unnest(w.models)::text ORDER BY 1), ','),
       array_to_string(ARRAY(SELECT unnest(w.kinds)::text ORDER BY 1), ','),
       NULL,
       sum(least(w.slots, COALESCE(h.n, 0)))::float8,
       sum(CASE WHEN w.draining THEN 0 ELSE greatest(w.slots - COALESCE(h.n, 0), 0) END)::float8
  FROM ai_workers w
  LEFT JOIN (SELECT "workerId", count(*) AS n FROM generations
              WHERE "workerId" IS NOT NULL AND status = 'PENDING' GROUP BY 1) h ON h."workerId" = w.id
 WHERE w."leaseExpiresAt" >= now()
 GROUP BY 2, 3
UNION ALL
SELECT 'owner', owner, NULL, NULL, count(*)::float8, NULL
  FROM generations WHERE "workerId" IS NOT NULL AND status = 'PENDING' GROUP BY 2
"""


def read(database_url: str) -> QueueMetrics:
    """The numbers as the database holds them now."""
    found = QueueMetrics()
    with psycopg.connect(
        libpq_url(database_url),
        autocommit=True,
        connect_timeout=READ_TIMEOUT_S,
        application_name="api_server metrics",
        options=f"-c statement_timeout={READ_TIMEOUT_S * 1000}",
    ) as conn:
        for part, first, second, priority, count, other in conn.execute(_SQL):
            if part == "queued":
                pair = (Model(first), Kind(second))
                found.depth[(*pair, Priority(priority))] = int(count)
                found.oldest_wait_s[pair] = max(found.oldest_wait_s.get(pair, 0.0), max(0.0, other))
            elif part == "pool":
                found.pools[(first, second)] = Pool(int(count), int(other))
            else:
                found.owners_running[first] = int(count)
    return found
