"""Tables of automation triggers and the events they received."""

from sqlalchemy import BigInteger, Column, Index, Table, Text

from causeflow.db.metadata import SEALED, metadata

triggers = Table(
    "triggers",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("slug", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("config", Text, nullable=False, server_default="{}", info=SEALED),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_triggers_tenant", "tenant_id", "created_at"),
)

trigger_events = Table(
    "trigger_events",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("trigger_id", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("action_taken", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Index("ix_trigger_events_trigger", "trigger_id", "received_at"),
)
