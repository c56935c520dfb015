"""Dispatch bookkeeping: each generation row is its own outbox entry.

Revision ID: 0003_dispatch_outbox
Revises: 0002_status_and_result
"""

from alembic import op

revision = "0003_dispatch_outbox"
down_revision = "0002_status_and_result"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE "generations"
            ADD COLUMN "attempts" INTEGER NOT NULL DEFAULT 0,
            ADD COLUMN "lastError" TEXT,
            ADD COLUMN "nextAttemptAt" TIMESTAMPTZ(3)
        """
    )
    # Only PENDING rows are ever due, so only they are indexed.
    op.execute("""CREATE INDEX "generations_due_idx" ON "generations" ("nextAttemptAt") WHERE "status" = 'PENDING'""")


def downgrade() -> None:
    op.execute('DROP INDEX "generations_due_idx"')
    op.execute(
        """
        ALTER TABLE "generations"
            DROP COLUMN "nextAttemptAt",
            DROP COLUMN "lastError",
            DROP COLUMN "attempts"
        """
    )
