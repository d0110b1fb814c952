"""the delivery search by event type reads an index

`ix_deliveries_tenant_type_created` (tenant_id, event_type, created_at): a search for one event
type reads that type's deliveries newest first, so a type the tenant's deliveries lack (or
rarely have) is an index probe instead of a walk of the tenant's whole `(tenant_id,
created_at)` range. It costs each delivery's insert one more B-tree entry (the status updates
leave it alone: none of its columns change). On PostgreSQL the CREATE INDEX blocks writes to
`deliveries` while it builds (seconds per million rows); a large store can build it first with
`CREATE INDEX CONCURRENTLY` under the same name, and this migration then skips it.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

NAME = "ix_deliveries_tenant_type_created"


def upgrade() -> None:
    op.execute(
        f"CREATE INDEX IF NOT EXISTS {NAME} ON deliveries (tenant_id, event_type, created_at)"
    )


def downgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {NAME}")
