"""subscription egress: client certificates and delivery auth

A subscription may present a client certificate to its receiver (`client_tls_enc`: the PEM
certificate and key) and authenticate its deliveries (`delivery_auth_enc`: a bearer token or
OAuth2 client credentials); both are sealed like the signing secrets.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_tls_enc", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("delivery_auth_enc", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("delivery_auth_enc")
        batch_op.drop_column("client_tls_enc")
