"""The mesh's own queue and its pool of AI workers.

A PENDING generation now has a phase: QUEUED in the mesh's queue, then on
a worker (STARTING: sent, HELD: taken, waiting there for a slot, RUNNING).
`workerId` names the worker, `takenAt` the worker's heartbeat number when
it took the generation, `startedAt` when it began to run. The queue's order
is `fairTag` (start-time fair queuing; leo_mesh.scheduling), per owner lane
(`queue_lanes`: the finish tag of the lane's last generation) and priority
class, from the virtual time in `queue_state`. API keys carry a weight (the
key's tier) and the highest priority their creates may ask for.

`ai_workers` holds the workers that registered (CallbackService.Heartbeat)
and the lease each keeps by heartbeating. Generations PENDING before this
revision are queued again: the AI backend they were sent to kept them in
memory only, and its results still count until a new dispatch replaces
their token. `queuePosition` goes: places come from the mesh's queue.

Revision ID: 0010_queue_and_workers
Revises: 0009_media_and_progress
"""

from alembic import op

revision = "0010_queue_and_workers"
down_revision = "0009_media_and_progress"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE TYPE "generation_phase" AS ENUM ('QUEUED', 'STARTING', 'HELD', 'RUNNING')""")
    op.execute(
        """
        CREATE TABLE "ai_workers" (
            "id" UUID NOT NULL,
            "address" TEXT NOT NULL,
            "slots" INTEGER NOT NULL,
            "prefetch" INTEGER NOT NULL,
            "models" "core_models"[] NOT NULL,
            "kinds" "generation_kind"[] NOT NULL,
            "draining" BOOLEAN NOT NULL DEFAULT false,
            "heartbeat" BIGINT NOT NULL,
            "registeredAt" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
            "heartbeatAt" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
            "leaseExpiresAt" TIMESTAMPTZ(3) NOT NULL,
            "aliveSince" TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
            CONSTRAINT "ai_workers_pkey" PRIMARY KEY ("id"),
            CONSTRAINT "ai_workers_slots_check" CHECK ("slots" >= 1),
            CONSTRAINT "ai_workers_prefetch_check" CHECK ("prefetch" >= 0)
        )
        """
    )
    op.execute(
        """
        ALTER TABLE "generations"
            ADD COLUMN "phase" "generation_phase" DEFAULT 'QUEUED',
            ADD COLUMN "workerId" UUID,
            ADD COLUMN "takenAt" BIGINT,
            ADD COLUMN "assignedAt" TIMESTAMPTZ(3),
            ADD COLUMN "startedAt" TIMESTAMPTZ(3),
            ADD COLUMN "priority" SMALLINT NOT NULL DEFAULT 1,
            ADD COLUMN "fairTag" DOUBLE PRECISION NOT NULL DEFAULT 0,
            DROP COLUMN "queuePosition",
            ADD CONSTRAINT "generations_priority_check" CHECK ("priority" BETWEEN 0 AND 2)
        """
    )
    op.execute("""UPDATE "generations" SET "phase" = NULL WHERE "status" <> 'PENDING' """)
    op.execute(
        """UPDATE "generations" SET "nextAttemptAt" = now(), "progress" = NULL"""
        """ WHERE "status" = 'PENDING' AND "nextAttemptAt" IS NOT NULL"""
    )
    op.execute(
        '''ALTER TABLE "generations" ADD CONSTRAINT "generations_phase_check"'''
        """ CHECK (("status" = 'PENDING') = ("phase" IS NOT NULL))"""
    )
    op.execute(
        'CREATE INDEX "generations_queue_idx" ON "generations" ("fairTag", "priority" DESC, "createdAt")'
        " WHERE \"phase\" = 'QUEUED'"
    )
    op.execute('CREATE INDEX "generations_worker_idx" ON "generations" ("workerId") WHERE "workerId" IS NOT NULL')
    # Recent durations (the queue's estimates).
    op.execute(
        'CREATE INDEX "generations_completed_idx" ON "generations" ("completedAt") WHERE "status" = \'COMPLETE\''
    )
    op.execute(
        """
        CREATE TABLE "queue_lanes" (
            "owner" TEXT NOT NULL,
            "priority" SMALLINT NOT NULL,
            "finish" DOUBLE PRECISION NOT NULL,
            CONSTRAINT "queue_lanes_pkey" PRIMARY KEY ("owner", "priority")
        )
        """
    )
    op.execute(
        """
        CREATE TABLE "queue_state" (
            "id" SMALLINT NOT NULL DEFAULT 1,
            "virtualTime" DOUBLE PRECISION NOT NULL DEFAULT 0,
            CONSTRAINT "queue_state_pkey" PRIMARY KEY ("id"),
            CONSTRAINT "queue_state_one_row" CHECK ("id" = 1)
        )
        """
    )
    op.execute('INSERT INTO "queue_state" DEFAULT VALUES')
    op.execute(
        """
        ALTER TABLE "api_keys"
            ADD COLUMN "weight" INTEGER NOT NULL DEFAULT 1,
            ADD COLUMN "maxPriority" SMALLINT NOT NULL DEFAULT 1,
            ADD CONSTRAINT "api_keys_weight_check" CHECK ("weight" BETWEEN 1 AND 100),
            ADD CONSTRAINT "api_keys_maxPriority_check" CHECK ("maxPriority" BETWEEN 0 AND 2)
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE "api_keys"
            DROP COLUMN "maxPriority",
            DROP COLUMN "weight"
        """
    )
    op.execute('DROP TABLE "queue_state"')
    op.execute('DROP TABLE "queue_lanes"')
    op.execute('DROP INDEX "generations_completed_idx"')
    op.execute('DROP INDEX "generations_worker_idx"')
    op.execute('DROP INDEX "generations_queue_idx"')
    op.execute(
        """
        ALTER TABLE "generations"
            DROP CONSTRAINT "generations_phase_check",
            DROP CONSTRAINT "generations_priority_check",
            ADD COLUMN "queuePosition" INTEGER,
            ADD CONSTRAINT "generations_queuePosition_check" CHECK ("queuePosition" >= 1),
            DROP COLUMN "fairTag",
            DROP COLUMN "priority",
            DROP COLUMN "startedAt",
            DROP COLUMN "assignedAt",
            DROP COLUMN "takenAt",
            DROP COLUMN "workerId",
            DROP COLUMN "phase"
        """
    )
    op.execute('DROP TABLE "ai_workers"')
    op.execute('DROP TYPE "generation_phase"')
