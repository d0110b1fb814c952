"""delivery sequences and ordered subscriptions

Each subscription counts its matches (`subscription_sequences`) and each delivery carries its
number (`sequence`, unique per subscription); subscriptions may be ordered (`ordering`,
`ordering_key`) and their deliveries remember it (`ordered`, `ordering_key`). The backlog
index of a subscription's pending deliveries leads with the sequence, which the ordered
claim's "nothing earlier pending" test reads.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        "subscription_sequences",
        sa.Column("subscription_id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_subscription_sequences")),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ordering", sa.Text(), server_default="unordered", nullable=False)
        )
        batch_op.add_column(sa.Column("ordering_key", sa.Text(), nullable=True))
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sequence", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("ordered", sa.Boolean(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("ordering_key", sa.Text(), nullable=True))
        batch_op.drop_index("ix_deliveries_pending_subscription")
        batch_op.create_index(
            "ix_deliveries_pending_subscription",
            ["subscription_id", "sequence", "created_at"],
            unique=False,
            sqlite_where=PENDING,
            postgresql_where=PENDING,
        )
        batch_op.create_index(
            "ux_deliveries_subscription_sequence", ["subscription_id", "sequence"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ux_deliveries_subscription_sequence")
        batch_op.drop_index("ix_deliveries_pending_subscription")
        batch_op.create_index(
            "ix_deliveries_pending_subscription",
            ["subscription_id", "created_at"],
            unique=False,
            sqlite_where=PENDING,
            postgresql_where=PENDING,
        )
        batch_op.drop_column("ordering_key")
        batch_op.drop_column("ordered")
        batch_op.drop_column("sequence")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("ordering_key")
        batch_op.drop_column("ordering")
    op.drop_table("subscription_sequences")
