"""the trace context stored with each event

`events.traceparent`: the W3C traceparent of the span that appended the event, so that its
deliveries (in whichever process) and the streams that write it join its trace. NULL when
tracing was off. Adding a nullable column rewrites no row on either database.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("traceparent", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("traceparent")
