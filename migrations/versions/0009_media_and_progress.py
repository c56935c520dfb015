"""A generation's kind (IMAGE or VIDEO) and the progress the AI reports.

`kind` defaults to IMAGE, which every existing generation is. The
generated files stay in the `images` JSONB column: each entry is now an
asset (its key in the media store, content type, size, ...); entries
written before, with a made-up url, are left as they are. `queuePosition`
and `progress` hold what the AI last reported of the current dispatch.

Revision ID: 0009_media_and_progress
Revises: 0008_trace_parent
"""

from alembic import op

revision = "0009_media_and_progress"
down_revision = "0008_trace_parent"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE TYPE "generation_kind" AS ENUM ('IMAGE', 'VIDEO')""")
    op.execute(
        """
        ALTER TABLE "generations"
            ADD COLUMN "kind" "generation_kind" NOT NULL DEFAULT 'IMAGE',
            ADD COLUMN "queuePosition" INTEGER,
            ADD COLUMN "progress" SMALLINT,
            ADD CONSTRAINT "generations_queuePosition_check" CHECK ("queuePosition" >= 1),
            ADD CONSTRAINT "generations_progress_check" CHECK ("progress" >= 0 AND "progress" <= 100)
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE "generations"
            DROP COLUMN "progress",
            DROP COLUMN "queuePosition",
            DROP COLUMN "kind"
        """
    )
    op.execute('DROP TYPE "generation_kind"')
