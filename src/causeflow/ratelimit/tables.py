"""Shared rate-limit counters (PostgreSQL: every process adds its counts here)."""

from sqlalchemy import BigInteger, Column, PrimaryKeyConstraint, Table, Text

from causeflow.db.metadata import metadata

rate_counters = Table(
    "rate_counters",
    metadata,
    Column("bucket", Text, nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("count", BigInteger, nullable=False),
    PrimaryKeyConstraint("bucket", "window_start"),
)
