"""A counter of each owner's PENDING generations, kept by triggers.

Creates check the PENDING cap against it (instead of counting the owner's
PENDING rows) and lock the owner's counter row while they insert, which
also orders an owner's creates as they commit (the page cursor's promise,
which an advisory lock kept before). Triggers keep the counter right
whatever moves a generation in or out of PENDING; they lock counter rows in
owner order, as creates do, so the two never deadlock.

Revision ID: 0007_owner_quotas
Revises: 0006_key_revocation_notify
"""

from alembic import op

revision = "0007_owner_quotas"
down_revision = "0006_key_revocation_notify"
branch_labels = None
depends_on = None

# Adds each owner's change of PENDING rows (computed by the caller from the
# statement's transition tables) to the counters, locking them in owner order.
APPLY = """
CREATE FUNCTION "owner_quotas_apply"(owners text[], deltas integer[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF owners IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO "owner_quotas" ("owner") SELECT o FROM unnest(owners) AS o ORDER BY o ON CONFLICT DO NOTHING;
    PERFORM 1 FROM "owner_quotas" WHERE "owner" = ANY(owners) ORDER BY "owner" FOR UPDATE;
    UPDATE "owner_quotas" AS q SET "pending" = q."pending" + t.delta
    FROM unnest(owners, deltas) AS t(owner, delta) WHERE q."owner" = t.owner;
END
$$
"""

TRIGGER_FUNCTION = """
CREATE FUNCTION "generations_{name}"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    owners text[];
    deltas integer[];
BEGIN
    SELECT array_agg(owner ORDER BY owner), array_agg(delta ORDER BY owner) INTO owners, deltas
    FROM (
        SELECT owner, sum(delta)::integer AS delta FROM ({changes}) AS change
        WHERE owner IS NOT NULL GROUP BY owner HAVING sum(delta) <> 0
    ) AS per_owner;
    PERFORM "owner_quotas_apply"(owners, deltas);
    RETURN NULL;
END
$$
"""

ENTERED = """SELECT owner, 1 AS delta FROM new_rows WHERE status = 'PENDING'"""
LEFT = """SELECT owner, -1 AS delta FROM old_rows WHERE status = 'PENDING'"""


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE "owner_quotas" (
            "owner" TEXT NOT NULL,
            "pending" INTEGER NOT NULL DEFAULT 0,
            CONSTRAINT "owner_quotas_pkey" PRIMARY KEY ("owner"),
            CONSTRAINT "owner_quotas_pending_check" CHECK ("pending" >= 0)
        )
        """
    )
    op.execute(
        """
        INSERT INTO "owner_quotas" ("owner", "pending")
        SELECT "owner", count(*) FROM "generations" WHERE "owner" IS NOT NULL AND "status" = 'PENDING' GROUP BY "owner"
        """
    )
    op.execute(APPLY)
    op.execute(TRIGGER_FUNCTION.format(name="inserted", changes=ENTERED))
    op.execute(TRIGGER_FUNCTION.format(name="updated", changes=f"{ENTERED} UNION ALL {LEFT}"))
    op.execute(TRIGGER_FUNCTION.format(name="deleted", changes=LEFT))
    op.execute(
        'CREATE TRIGGER "generations_quota_insert" AFTER INSERT ON "generations"'
        ' REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "generations_inserted"()'
    )
    op.execute(
        'CREATE TRIGGER "generations_quota_update" AFTER UPDATE ON "generations"'
        " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
        ' FOR EACH STATEMENT EXECUTE FUNCTION "generations_updated"()'
    )
    op.execute(
        'CREATE TRIGGER "generations_quota_delete" AFTER DELETE ON "generations"'
        ' REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION "generations_deleted"()'
    )


def downgrade() -> None:
    for trigger in ("generations_quota_insert", "generations_quota_update", "generations_quota_delete"):
        op.execute(f'DROP TRIGGER "{trigger}" ON "generations"')
    for function in ("generations_inserted", "generations_updated", "generations_deleted"):
        op.execute(f'DROP FUNCTION "{function}"()')
    op.execute('DROP FUNCTION "owner_quotas_apply"(text[], integer[])')
    op.execute('DROP TABLE "owner_quotas"')
