"""The event log: one row per event, positioned in its tenant's commit order.

`event_heads` holds each tenant's last position; taking the next position updates that row,
whose lock is held until commit, so positions follow commit order (docs/reference.md §3.5).
"""

from sqlalchemy import BigInteger, Boolean, Column, Index, Table, Text

from causeflow.db.metadata import metadata

events = Table(
    "events",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("type", Text, nullable=False),
    Column("incident_id", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("test", Boolean, nullable=False, server_default="0"),
    Column("envelope", Text, nullable=False),  # the exact bytes every reader sees
    # the W3C traceparent of the span that appended it (tracing on), for its readers' spans
    Column("traceparent", Text, nullable=True),
    Index("uq_events_tenant_position", "tenant_id", "position", unique=True),
    Index("ix_events_tenant_type_position", "tenant_id", "type", "position"),
    Index("ix_events_tenant_incident_position", "tenant_id", "incident_id", "position"),
    Index("ix_events_tenant_created", "tenant_id", "created_at"),
    Index("ix_events_created", "created_at"),
)

event_heads = Table(
    "event_heads",
    metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
)
