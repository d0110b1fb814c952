"""Tables of users (people who belong to one tenant)."""

from sqlalchemy import BigInteger, Column, Index, Table, Text

from causeflow.db.metadata import metadata

users = Table(
    "users",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("email", Text, nullable=False),
    Column("name", Text, nullable=True),
    Column("role", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("uq_users_tenant_email", "tenant_id", "email", unique=True),
)
