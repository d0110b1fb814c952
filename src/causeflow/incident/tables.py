"""Tables of incidents, their alerts and the open incident of each alert key (dedup)."""

from sqlalchemy import BigInteger, Column, Index, Integer, PrimaryKeyConstraint, Table, Text

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

alerts = Table(
    "alerts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("incident_id", Text, nullable=True),
    Column("provider", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("severity", Text, nullable=False),
    Column("service", Text, nullable=True),
    Column("environment", Text, nullable=True),
    Column("labels", Text, nullable=False, server_default="{}"),
    Column("url", Text, nullable=True),
    Column("raw", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Index("ix_alerts_incident", "incident_id", "received_at"),
    Index("ix_alerts_tenant_received", "tenant_id", "received_at"),
)

# (tenant, provider, fingerprint) -> the incident that is open for it. The primary key makes
# two simultaneous copies of one alert open one incident; the row goes when the incident
# resolves or closes, so a re-fire opens a new one, and comes back when a resolved incident is
# reopened (unless a newer incident has opened for the key meanwhile).
open_fingerprints = Table(
    "open_fingerprints",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("incident_id", Text, nullable=False),
    PrimaryKeyConstraint("tenant_id", "provider", "fingerprint"),
    Index("ix_open_fingerprints_incident", "incident_id"),
)
