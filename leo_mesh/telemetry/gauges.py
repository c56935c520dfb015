"""Gauges sampled in the background rather than at each scrape: the
database pool (every POOL_INTERVAL_S) and, in the api_server, the dispatch
backlog read from the database (every BACKLOG_INTERVAL_S).

The backlog is one query over the PENDING rows. Prometheus scrapes every
15 s (deploy/prometheus); reading every 5 s keeps what it sees at most 5 s
old while each process sends at most one such query per 5 s, however many
scrapers ask and however often. Every replica reads the same numbers; the
dashboards take max().
"""

from __future__ import annotations

import asyncio
import logging

from leo_mesh import metrics
from leo_mesh.db import backlog
from leo_mesh.db.pool import Database

log = logging.getLogger("leo.metrics")

POOL_INTERVAL_S = 1.0
BACKLOG_INTERVAL_S = 5.0


class DatabaseGauges:
    def __init__(self, db: Database, *, backlog: bool) -> None:
        """`backlog`: also read the dispatch backlog (the api_server)."""
        self._db = db
        self._backlog = backlog

    def sample_pool(self) -> None:
        stats = self._db.stats()
        metrics.DB_POOL_IN_USE.set(stats.get("pool_size", 0) - stats.get("pool_available", 0))
        metrics.DB_POOL_WAITING.set(stats.get("requests_waiting", 0))

    async def read_backlog(self) -> None:
        found = await backlog.read(self._db)
        metrics.BACKLOG_DUE.set(found.due)
        metrics.BACKLOG_IN_FLIGHT.set(found.in_flight)
        metrics.BACKLOG_OLDEST_DUE_AGE.set(found.oldest_due_age_s)
        metrics.PENDING_OLDEST_AGE.set(found.oldest_pending_age_s)

    async def run(self) -> None:
        """Sample until cancelled; a failed read keeps the last values (the database may be away)."""
        rounds_per_backlog = round(BACKLOG_INTERVAL_S / POOL_INTERVAL_S)
        count = 0
        while True:
            self.sample_pool()
            if self._backlog and count % rounds_per_backlog == 0:
                try:
                    await self.read_backlog()
                except Exception as exc:
                    log.warning("backlog not read", extra={"error": str(exc)})
            count += 1
            await asyncio.sleep(POOL_INTERVAL_S)
