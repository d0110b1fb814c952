"""Tables of tenants (the isolation unit of every other table)."""

from sqlalchemy import BigInteger, Column, Table, Text

from causeflow.db.metadata import SEALED, metadata

tenants = Table(
    "tenants",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("plan", Text, nullable=False),
    # inbound settings: {"requireSignature": bool, "snsTopicArns": [...]} (plain JSON)
    Column("inbound", Text, nullable=False, server_default="{}"),
    # provider secrets {"sentry","pagerduty","grafana"}: JSON encrypted with the secret box
    Column("inbound_secrets_enc", Text, nullable=True, info=SEALED),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# A tenant's limit overrides set by a platform admin (ratelimit/limits.py); a missing row or a
# null column means the default.
tenant_limits = Table(
    "tenant_limits",
    metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("requests_per_minute", BigInteger, nullable=True),
    Column("publish_per_minute", BigInteger, nullable=True),
    Column("ingest_per_minute", BigInteger, nullable=True),
    Column("max_subscriptions", BigInteger, nullable=True),
    Column("max_streams", BigInteger, nullable=True),
    Column("event_retention_days", BigInteger, nullable=True),
    Column("delivery_retention_days", BigInteger, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
)
