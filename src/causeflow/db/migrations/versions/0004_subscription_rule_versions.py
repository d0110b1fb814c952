"""subscription rule versions

A subscription keeps the earlier versions of its matching rules that undispatched events may
still need (`rules_history`), and the dispatcher's cursor carries a generation that every
subscription delete bumps, so a batch planned before a delete cannot commit after it.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rules_history", sa.Text(), nullable=True))
    with op.batch_alter_table("dispatch_cursors", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("generation", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("dispatch_cursors", schema=None) as batch_op:
        batch_op.drop_column("generation")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("rules_history")
