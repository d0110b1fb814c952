"""Provider delivery ids (kept 24 h). The alerts and open fingerprints that inbound deliveries
write are the incident's tables (`incident/tables.py`)."""

from sqlalchemy import BigInteger, Column, Index, PrimaryKeyConstraint, Table, Text

from causeflow.db.metadata import metadata

inbound_deliveries = Table(
    "inbound_deliveries",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("delivery_id", Text, nullable=False),
    Column("response", Text, nullable=False),  # the 202 body first given for it
    Column("received_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant_id", "provider", "delivery_id"),
    Index("ix_inbound_deliveries_received", "received_at"),
)
