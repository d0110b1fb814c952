"""Tables of incidents."""

from sqlalchemy import BigInteger, Column, Index, Integer, Table, Text

from causeflow.db.metadata import metadata

incidents = Table(
    "incidents",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("severity", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("source", Text, nullable=False),  # provider name or "manual"
    Column("fingerprint", Text, nullable=True),
    Column("service", Text, nullable=True),
    Column("environment", Text, nullable=True),
    Column("alert_count", Integer, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("resolved_at", BigInteger, nullable=True),
    Index("ix_incidents_tenant_created", "tenant_id", "created_at", "id"),
    Index("ix_incidents_tenant_status", "tenant_id", "status", "created_at"),
)
