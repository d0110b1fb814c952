"""Tables of remediations proposed for incidents and of the approvals requested for them."""

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, Table, Text

from causeflow.db.metadata import metadata

remediations = Table(
    "remediations",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("incident_id", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("steps", Text, nullable=False),  # JSON list
    Column("requires_approval", Boolean, nullable=False),
    Column("status", Text, nullable=False),  # proposed | approved | rejected | executed
    Column("decided_by", Text, nullable=True),
    Column("reason", Text, nullable=True),
    Column("outcome", Text, nullable=True),
    Column("duration_ms", Integer, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_remediations_incident", "incident_id", "created_at"),
    Index("ix_remediations_tenant", "tenant_id", "created_at"),
)

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
