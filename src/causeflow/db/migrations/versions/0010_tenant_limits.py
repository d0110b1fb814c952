"""per-tenant limits and retention

`tenant_limits`: one row per tenant whose limits a platform admin has set; each null column
(and a missing row) means the service-wide default.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COLUMNS = (
    "requests_per_minute",
    "publish_per_minute",
    "ingest_per_minute",
    "max_subscriptions",
    "max_streams",
    "event_retention_days",
    "delivery_retention_days",
)


def upgrade() -> None:
    op.create_table(
        "tenant_limits",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=True) for name in COLUMNS),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_limits")),
    )


def downgrade() -> None:
    op.drop_table("tenant_limits")
