"""Tables of approvals requested for remediations."""

from sqlalchemy import BigInteger, Column, Index, Table, Text

from causeflow.db.metadata import metadata

approvals = Table(
    "approvals",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("incident_id", Text, nullable=False),
    Column("remediation_id", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("status", Text, nullable=False),  # pending | approved | rejected | expired
    Column("expires_at", BigInteger, nullable=False),
    Column("decided_by", Text, nullable=True),
    Column("notes", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("decided_at", BigInteger, nullable=True),
    Index("ix_approvals_tenant_status", "tenant_id", "status", "created_at"),
    Index("ix_approvals_status_expires", "status", "expires_at"),
)
