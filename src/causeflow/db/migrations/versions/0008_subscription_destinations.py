"""subscription destinations: a type beyond HTTP webhooks

A subscription has a destination `type` ("webhook" for every existing row, or a broker type),
the type's `options` (JSON) and, when its URL carries credentials, the URL with them sealed
(`destination_enc`).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("type", sa.Text(), server_default="webhook", nullable=False))
        batch_op.add_column(sa.Column("options", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("destination_enc", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("destination_enc")
        batch_op.drop_column("options")
        batch_op.drop_column("type")
