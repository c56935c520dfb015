"""Webhooks: a URL per generation, a signing secret per owner, and durable
deliveries (claimed like the dispatch outbox) with every attempt recorded.

Revision ID: 0005_webhooks
Revises: 0004_owners_and_keys
"""

from alembic import op

revision = "0005_webhooks"
down_revision = "0004_owners_and_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute('ALTER TABLE "generations" ADD COLUMN "webhookUrl" TEXT')
    op.execute(
        """
        CREATE TABLE "webhook_secrets" (
            "owner" TEXT NOT NULL,
            "secret" TEXT NOT NULL,
            "rotatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            CONSTRAINT "webhook_secrets_pkey" PRIMARY KEY ("owner")
        )
        """
    )
    op.execute("CREATE TYPE \"delivery_status\" AS ENUM ('PENDING', 'DELIVERED', 'FAILED')")
    op.execute(
        """
        CREATE TABLE "webhook_deliveries" (
            "id" UUID NOT NULL,
            "generationId" UUID NOT NULL REFERENCES "generations" ("generationId") ON DELETE CASCADE,
            "owner" TEXT NOT NULL,
            "url" TEXT NOT NULL,
            "payload" TEXT NOT NULL,
            "status" "delivery_status" NOT NULL DEFAULT 'PENDING',
            "attempts" INTEGER NOT NULL DEFAULT 0,
            "nextAttemptAt" TIMESTAMPTZ(3),
            "lastError" TEXT,
            "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "deliveredAt" TIMESTAMPTZ(3),
            CONSTRAINT "webhook_deliveries_pkey" PRIMARY KEY ("id")
        )
        """
    )
    op.execute('CREATE UNIQUE INDEX "webhook_deliveries_generationId_key" ON "webhook_deliveries" ("generationId")')
    op.execute(
        'CREATE INDEX "webhook_deliveries_due_idx" ON "webhook_deliveries" ("nextAttemptAt")'
        """ WHERE "status" = 'PENDING'"""
    )
    op.execute(
        """
        CREATE TABLE "webhook_attempts" (
            "deliveryId" UUID NOT NULL REFERENCES "webhook_deliveries" ("id") ON DELETE CASCADE,
            "attempt" INTEGER NOT NULL,
            "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
            "statusCode" INTEGER,
            "error" TEXT,
            "ms" INTEGER NOT NULL,
            CONSTRAINT "webhook_attempts_pkey" PRIMARY KEY ("deliveryId", "attempt")
        )
        """
    )


def downgrade() -> None:
    op.execute('DROP TABLE "webhook_attempts"')
    op.execute('DROP TABLE "webhook_deliveries"')
    op.execute('DROP TYPE "delivery_status"')
    op.execute('DROP TABLE "webhook_secrets"')
    op.execute('ALTER TABLE "generations" DROP COLUMN "webhookUrl"')
