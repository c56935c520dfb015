"""API keys, ownership, idempotent create, callback tokens, CANCELLED.

Revision ID: 0004_owners_and_keys
Revises: 0003_dispatch_outbox

Rows made before this revision have no owner: no API key can see them.
"""

from alembic import op

revision = "0004_owners_and_keys"
down_revision = "0003_dispatch_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE "api_keys" (
            "id" UUID NOT NULL,
            "owner" TEXT NOT NULL,
            "keyHash" BYTEA NOT NULL,
            "prefix" TEXT NOT NULL,
            "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "revokedAt" TIMESTAMPTZ(3),
            CONSTRAINT "api_keys_pkey" PRIMARY KEY ("id")
        )
        """
    )
    op.execute('CREATE UNIQUE INDEX "api_keys_keyHash_key" ON "api_keys" ("keyHash")')
    op.execute("ALTER TYPE \"generation_status\" ADD VALUE 'CANCELLED'")
    op.execute(
        """
        ALTER TABLE "generations"
            ADD COLUMN "owner" TEXT,
            ADD COLUMN "requestId" UUID,
            ADD COLUMN "requestFingerprint" TEXT,
            ADD COLUMN "callbackTokenHash" BYTEA
        """
    )
    op.execute(
        'CREATE UNIQUE INDEX "generations_owner_requestId_key" ON "generations" ("owner", "requestId")'
        ' WHERE "requestId" IS NOT NULL'
    )
    # Keyset paging of one owner's generations, newest first.
    op.execute('CREATE INDEX "generations_owner_page_idx" ON "generations" ("owner", "createdAt", "id")')
    # Counting an owner's PENDING generations for the rate limit.
    op.execute('CREATE INDEX "generations_owner_pending_idx" ON "generations" ("owner") WHERE "status" = \'PENDING\'')


def downgrade() -> None:
    op.execute('DROP INDEX "generations_owner_pending_idx"')
    op.execute('DROP INDEX "generations_owner_page_idx"')
    op.execute('DROP INDEX "generations_owner_requestId_key"')
    op.execute(
        """
        ALTER TABLE "generations"
            DROP COLUMN "callbackTokenHash",
            DROP COLUMN "requestFingerprint",
            DROP COLUMN "requestId",
            DROP COLUMN "owner"
        """
    )
    # PostgreSQL cannot drop an enum value: rebuild the type without it.
    op.execute(
        """UPDATE "generations" SET "status" = 'FAILED', "failureReason" = 'cancelled' WHERE "status" = 'CANCELLED'"""
    )
    op.execute('DROP INDEX "generations_due_idx"')
    op.execute('ALTER TABLE "generations" ALTER COLUMN "status" DROP DEFAULT')
    op.execute('ALTER TYPE "generation_status" RENAME TO "generation_status_old"')
    op.execute("CREATE TYPE \"generation_status\" AS ENUM ('PENDING', 'COMPLETE', 'FAILED')")
    op.execute(
        'ALTER TABLE "generations" ALTER COLUMN "status" TYPE "generation_status"'
        ' USING "status"::text::"generation_status"'
    )
    op.execute('ALTER TABLE "generations" ALTER COLUMN "status" SET DEFAULT \'PENDING\'')
    op.execute('DROP TYPE "generation_status_old"')
    op.execute("""CREATE INDEX "generations_due_idx" ON "generations" ("nextAttemptAt") WHERE "status" = 'PENDING'""")
    op.execute('DROP TABLE "api_keys"')
