"""Generation status and result; timestamps become timezone-aware.

Rows from before this revision were made by the seed, which never recorded
an outcome. They become FAILED, so that the dispatcher never sends them to
the AI by surprise; only rows inserted afterwards default to PENDING.

Revision ID: 0002_status_and_result
Revises: 0001_seed_schema
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_status_and_result"
down_revision = "0001_seed_schema"
branch_labels = None
depends_on = None

UNRECORDED_OUTCOME = "created before status tracking; the outcome was not recorded"


def upgrade() -> None:
    # The seed wrote UTC into its timezone-less columns.
    op.execute(
        """
        ALTER TABLE "generations"
            ALTER COLUMN "createdAt" TYPE TIMESTAMPTZ(3) USING "createdAt" AT TIME ZONE 'UTC',
            ALTER COLUMN "updatedAt" TYPE TIMESTAMPTZ(3) USING "updatedAt" AT TIME ZONE 'UTC'
        """
    )
    op.execute("""CREATE TYPE "generation_status" AS ENUM ('PENDING', 'COMPLETE', 'FAILED')""")
    # Existing rows get FAILED from the column default; new ones PENDING.
    op.execute(
        """
        ALTER TABLE "generations"
            ADD COLUMN "status" "generation_status" NOT NULL DEFAULT 'FAILED',
            ADD COLUMN "images" JSONB NOT NULL DEFAULT '[]'::jsonb,
            ADD COLUMN "failureReason" TEXT,
            ADD COLUMN "completedAt" TIMESTAMPTZ(3)
        """
    )
    op.execute(
        sa.text('UPDATE "generations" SET "failureReason" = :reason, "completedAt" = "updatedAt"').bindparams(
            reason=UNRECORDED_OUTCOME
        )
    )
    op.execute("""ALTER TABLE "generations" ALTER COLUMN "status" SET DEFAULT 'PENDING'""")


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE "generations"
            DROP COLUMN "completedAt",
            DROP COLUMN "failureReason",
            DROP COLUMN "images",
            DROP COLUMN "status"
        """
    )
    op.execute('DROP TYPE "generation_status"')
    op.execute(
        """
        ALTER TABLE "generations"
            ALTER COLUMN "createdAt" TYPE TIMESTAMP(3) USING "createdAt" AT TIME ZONE 'UTC',
            ALTER COLUMN "updatedAt" TYPE TIMESTAMP(3) USING "updatedAt" AT TIME ZONE 'UTC'
        """
    )
