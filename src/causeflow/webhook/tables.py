"""Tables of outbound delivery: subscriptions, the dispatcher's cursors, deliveries, attempts.

A delivery (`msg_`) is one event for one subscription; it is the unit the workers claim with a
lease (`lease_until`). Attempts (`att_`) record each HTTP try.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    Table,
    Text,
    literal_column,
    text,
)

from causeflow.db.metadata import SEALED, metadata

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("events", Text, nullable=False),  # JSON list of names or ["*"]
    Column("filter", Text, nullable=True),  # JSON object
    Column(
        "headers_enc", Text, nullable=True, info=SEALED
    ),  # JSON object, encrypted (may hold credentials)
    Column("secret_enc", Text, nullable=False, info=SEALED),
    Column("previous_secret_enc", Text, nullable=True, info=SEALED),
    Column("previous_secret_until", BigInteger, nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", Text, nullable=True),
    Column("first_failure_at", BigInteger, nullable=True),
    Column("rate_limit_per_second", Integer, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # the tenant's log position when the subscription was created or its matching rules
    # (events, filter, enabled) last changed: those columns match the events after it
    Column("from_position", BigInteger, nullable=False),
    # the earlier versions of the matching rules the dispatcher may still need, oldest first:
    # JSON [{"start", "events", "filter", "enabled"}], each for the events after its start up
    # to the next version's; NULL when there are none
    Column("rules_history", Text, nullable=True),
    Index("ix_subscriptions_tenant", "tenant_id", "id"),
)

dispatch_cursors = Table(
    "dispatch_cursors",
    metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
    # bumped by every subscription delete of the tenant: a batch planned before a delete
    # cannot commit after it (its compare-and-set names the generation it read)
    Column("generation", BigInteger, nullable=False, server_default="0"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("subscription_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("status", Text, nullable=False),  # pending | succeeded | failed | cancelled
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", BigInteger, nullable=True),
    Column("lease_owner", Text, nullable=True),
    Column("lease_until", BigInteger, nullable=True),
    Column("manual", Boolean, nullable=False, server_default="0"),  # one-off retry, no schedule
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("payload", Text, nullable=True),  # only for test deliveries, which are not in the log
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # Pending deliveries only, in due order: what the workers claim. A finished delivery
    # leaves it, so it stays as small as the queue. Queries name `status = 'pending'` as a
    # literal (PENDING below), or the planner cannot use it.
    Index(
        "ix_deliveries_pending",
        "next_attempt_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_deliveries_subscription_created", "subscription_id", "created_at"),
)

# `deliveries.status = 'pending'` spelled as a literal, so the planner matches the partial index.
PENDING = deliveries.c.status == literal_column("'pending'")

attempts = Table(
    "attempts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("delivery_id", Text, nullable=False),
    Column("tenant_id", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("response_body", Text, nullable=True),  # first 4 KiB
    Index("ix_attempts_delivery", "delivery_id", "created_at"),
    Index("ix_attempts_created", "created_at"),
)
