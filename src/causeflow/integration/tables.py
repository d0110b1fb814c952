"""Tables of integrations (connected third-party tools)."""

from sqlalchemy import BigInteger, Column, Index, Table, Text

from causeflow.db.metadata import SEALED, metadata

integrations = Table(
    "integrations",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("name", Text, nullable=True),
    Column("config", Text, nullable=False, server_default="{}", info=SEALED),
    Column("status", Text, nullable=False),  # connected | disconnected
    Column("connected_by", Text, nullable=True),
    Column("disconnected_by", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_integrations_tenant", "tenant_id", "created_at"),
)
