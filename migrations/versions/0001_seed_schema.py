"""The seed's schema, exactly as its Prisma migration created it.

Revision ID: 0001_seed_schema
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_seed_schema"
down_revision = None
branch_labels = None
depends_on = None

# Prisma's DDL, verbatim apart from layout.
SEED_SCHEMA = [
    """CREATE TYPE "core_models" AS ENUM ('SD', 'SDXL')""",
    """
    CREATE TABLE "generations" (
        "id" UUID NOT NULL,
        "generationId" UUID NOT NULL,
        "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
        "updatedAt" TIMESTAMP(3) NOT NULL,
        "public" BOOLEAN NOT NULL DEFAULT false,
        "flagged" BOOLEAN NOT NULL DEFAULT false,
        "nsfw" BOOLEAN NOT NULL DEFAULT false,
        "coreModel" "core_models" NOT NULL DEFAULT 'SDXL',
        "imageHeight" INTEGER NOT NULL DEFAULT 1024,
        "imageWidth" INTEGER NOT NULL DEFAULT 1024,
        "prompt" VARCHAR(1500) NOT NULL,

        CONSTRAINT "generations_pkey" PRIMARY KEY ("id")
    )
    """,
    """CREATE UNIQUE INDEX "generations_generationId_key" ON "generations"("generationId")""",
]


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("generations"):
        # A database the seed made with Prisma has this schema but no
        # alembic_version yet: adopt it as it is.
        return
    for statement in SEED_SCHEMA:
        op.execute(statement)


def downgrade() -> None:
    op.execute('DROP TABLE "generations"')
    op.execute('DROP TYPE "core_models"')
