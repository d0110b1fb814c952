"""Cross-cutting request state: idempotency records."""

from sqlalchemy import BigInteger, Column, Index, Integer, PrimaryKeyConstraint, Table, Text

from causeflow.db.metadata import SEALED, metadata

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("request_hash", Text, nullable=False),  # method + path + body digest
    Column("state", Text, nullable=False),  # in_flight | done
    Column("status_code", Integer, nullable=True),
    Column("response_body", Text, nullable=True, info=SEALED),  # may carry secrets shown once
    Column("response_headers", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant_id", "key"),
    Index("ix_idempotency_keys_created", "created_at"),
)
