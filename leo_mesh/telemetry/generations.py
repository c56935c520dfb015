"""The generation metrics, counted once per generation where the database
says it happened: by the stores, after the transaction that made it
committed (a create or completion batched with others counts for itself).
Each is labelled with what the row says of the generation: its model and
kind (IMAGE or VIDEO)."""

from __future__ import annotations

from collections.abc import Iterable

from leo_mesh import metrics
from leo_mesh.db.rows import GenerationRow


def created(rows: Iterable[GenerationRow]) -> None:
    for row in rows:
        metrics.GENERATIONS_CREATED.labels(row.model.value, row.kind.value).inc()


def finished(rows: Iterable[GenerationRow]) -> None:
    """Generations that just reached their final state."""
    for row in rows:
        status = row.status.value
        metrics.GENERATIONS_FINISHED.labels(status, row.model.value, row.kind.value).inc()
        if row.completed_at is not None:
            lifetime_s = (row.completed_at - row.created_at).total_seconds()
            metrics.GENERATION_LIFETIME.labels(status).observe(max(0.0, lifetime_s))


def deadlines_missed(count: int) -> None:
    """Dispatched generations found due again with no callback (see GenerationStore.claim_due)."""
    if count:
        metrics.DISPATCH_TIMEOUTS.inc(count)
