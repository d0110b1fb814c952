"""shared delivery limits

Tables for the delivery limits several worker processes share on PostgreSQL (the per-host
in-flight slots, who wants more of them, and each rate-limited subscription's start
schedule), and the pending index carries `created_at` so the queue's oldest age is read from
the index alone.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        "host_slots",
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("lease_until", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("origin", "slot", name=op.f("pk_host_slots")),
    )
    op.create_table(
        "host_wants",
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("until", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("origin", "owner", name=op.f("pk_host_wants")),
    )
    op.create_table(
        "rate_slots",
        sa.Column("subscription_id", sa.Text(), nullable=False),
        sa.Column("next_at", sa.BigInteger(), nullable=False),
        sa.Column("granted", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_rate_slots")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_pending")
        batch_op.create_index(
            "ix_deliveries_pending",
            ["next_attempt_at", "created_at"],
            unique=False,
            sqlite_where=PENDING,
            postgresql_where=PENDING,
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_pending")
        batch_op.create_index(
            "ix_deliveries_pending",
            ["next_attempt_at"],
            unique=False,
            sqlite_where=PENDING,
            postgresql_where=PENDING,
        )
    op.drop_table("rate_slots")
    op.drop_table("host_wants")
    op.drop_table("host_slots")
