"""delivery insight

Attempts name their subscription (backfilled from their delivery), so an endpoint's
statistics read one index range; deliveries gain the indexes of the search across
subscriptions (newest first per tenant, and by event) and one of each subscription's pending
deliveries (its backlog).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subscription_id", sa.Text(), nullable=True))
    op.execute(
        "UPDATE attempts SET subscription_id = "
        "(SELECT d.subscription_id FROM deliveries d WHERE d.id = attempts.delivery_id)"
    )
    op.create_index(
        "ix_attempts_subscription_created", "attempts", ["subscription_id", "created_at"]
    )
    op.create_index("ix_deliveries_tenant_created", "deliveries", ["tenant_id", "created_at"])
    op.create_index("ix_deliveries_tenant_event", "deliveries", ["tenant_id", "event_id"])
    op.create_index(
        "ix_deliveries_pending_subscription",
        "deliveries",
        ["subscription_id", "created_at"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_pending_subscription", table_name="deliveries")
    op.drop_index("ix_deliveries_tenant_event", table_name="deliveries")
    op.drop_index("ix_deliveries_tenant_created", table_name="deliveries")
    op.drop_index("ix_attempts_subscription_created", table_name="attempts")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("subscription_id")
