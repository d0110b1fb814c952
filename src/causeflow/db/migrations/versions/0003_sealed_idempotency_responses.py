"""sealed idempotency responses

Stored responses of idempotent requests are now sealed with the service's secret box and kept
per caller. Records written before (responses in clear, some with API keys, signing secrets or
stream tickets) are removed; a request still in flight keeps its claim.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("DELETE FROM idempotency_keys WHERE state <> 'in_flight'"))


def downgrade() -> None:
    # Sealed records cannot be read by the older code: it would replay them as they are.
    op.execute(sa.text("DELETE FROM idempotency_keys WHERE state <> 'in_flight'"))
