"""Revoking an API key notifies every api_server at once, whoever revokes it
(the keys CLI, or an operator's UPDATE): they cache keys for a few seconds
and end the key's open watches.

Revision ID: 0006_key_revocation_notify
Revises: 0005_webhooks
"""

from alembic import op

revision = "0006_key_revocation_notify"
down_revision = "0005_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION "api_key_revoked_notify"() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('api_key_revoked', encode(OLD."keyHash", 'hex'));
            ELSIF NEW."revokedAt" IS NOT NULL AND OLD."revokedAt" IS NULL THEN
                PERFORM pg_notify('api_key_revoked', encode(NEW."keyHash", 'hex'));
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        'CREATE TRIGGER "api_keys_revoked" AFTER UPDATE OF "revokedAt" OR DELETE ON "api_keys"'
        ' FOR EACH ROW EXECUTE FUNCTION "api_key_revoked_notify"()'
    )


def downgrade() -> None:
    op.execute('DROP TRIGGER "api_keys_revoked" ON "api_keys"')
    op.execute('DROP FUNCTION "api_key_revoked_notify"()')
