"""Each generation keeps the trace context of the call that created it, so
that its dispatches and webhook deliveries, run later and perhaps by
another replica or after a restart, join the create's trace.

A W3C traceparent ("00-<trace id>-<span id>-<flags>"); NULL when the create
was not traced. Adding a nullable column rewrites nothing.

Revision ID: 0008_trace_parent
Revises: 0007_owner_quotas
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_trace_parent"
down_revision = "0007_owner_quotas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("generations", sa.Column("traceParent", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("generations", "traceParent")
