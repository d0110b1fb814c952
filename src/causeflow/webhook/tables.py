"""Tables of outbound delivery: subscriptions, the dispatcher's cursors, deliveries, attempts,
and the delivery limits several worker processes share (host slots, rate schedules).

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
    # "ordered": a delivery is sent only after every earlier one (by sequence) of the same
    # lane has finished; the lane is the subscription, or one value of `ordering_key` (a
    # dotted path into the event's data) when set. Applies to the deliveries created after.
    Column("ordering", Text, nullable=False, server_default="unordered"),
    Column("ordering_key", Text, nullable=True),
    # egress: the client certificate presented to the receiver (JSON {"certificate", "key"},
    # PEM) and the delivery auth (JSON {"type": "bearer"|"oauth2", ...}), both sealed
    Column("client_tls_enc", Text, nullable=True, info=SEALED),
    Column("delivery_auth_enc", Text, nullable=True, info=SEALED),
    # the destination: "webhook" (HTTP POST to `url`) or a broker type with its JSON `options`;
    # `url` is shown as stored (a password replaced by `****`) and `destination_enc` holds the
    # URL with its credentials, sealed (NULL when the URL carries none)
    Column("type", Text, nullable=False, server_default="webhook"),
    Column("options", Text, nullable=True),
    Column("destination_enc", Text, nullable=True, info=SEALED),
    Index("ix_subscriptions_tenant", "tenant_id", "id"),
)

# Each subscription's count of matched events: the last sequence number the dispatcher gave
# one of its deliveries. Written only by the dispatcher, after its cursor's compare-and-set,
# so the cursor's row lock serializes the tenant's assignments (no gaps, no duplicates).
subscription_sequences = Table(
    "subscription_sequences",
    metadata,
    Column("subscription_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("last", BigInteger, nullable=False),
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
    # the k-th match of the subscription (1-based, gap-free); NULL for test deliveries and
    # replays, which are re-sends rather than matches
    Column("sequence", BigInteger, nullable=True),
    # sent in sequence order within its lane (the subscription was ordered at dispatch)
    Column("ordered", Boolean, nullable=False, server_default="0"),
    # the lane of a keyed ordered delivery: the ordering key's value as JSON text; NULL when
    # unkeyed or the event has no such key (one "no key" lane)
    Column("ordering_key", Text, nullable=True),
    # Pending deliveries only, in due order: what the workers claim. A finished delivery
    # leaves it, so it stays as small as the queue. Queries name `status = 'pending'` as a
    # literal (PENDING below), or the planner cannot use it. `created_at` rides along so the
    # queue's size and oldest age are read from the index alone.
    Index(
        "ix_deliveries_pending",
        "next_attempt_at",
        "created_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_deliveries_subscription_created", "subscription_id", "created_at"),
    # the delivery search across subscriptions (GET /v1/deliveries): newest first, by event
    Index("ix_deliveries_tenant_created", "tenant_id", "created_at"),
    Index("ix_deliveries_tenant_event", "tenant_id", "event_id"),
    # the delivery search by event type, newest first within each type: a type the tenant's
    # deliveries lack (or rarely have) is an index probe, not a walk of its whole history
    Index("ix_deliveries_tenant_type_created", "tenant_id", "event_type", "created_at"),
    # no sequence number twice (NULLs, test deliveries and replays, are not compared)
    Index("ux_deliveries_subscription_sequence", "subscription_id", "sequence", unique=True),
    # one subscription's pending deliveries in sequence order: the ordered claim's test "no
    # earlier one pending", and its backlog (count and oldest from the index alone)
    Index(
        "ix_deliveries_pending_subscription",
        "subscription_id",
        "sequence",
        "created_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
)

# The per-host in-flight cap shared by several worker processes (PostgreSQL): `cap` numbered
# slots per origin (`scheme://host:port`), each leased to one process at a time like a
# delivery (`owner` until `lease_until`, epoch ms), so a process that dies frees its slots when
# the lease runs out. A process holds a slot while it sends to that origin, then a moment more.
host_slots = Table(
    "host_slots",
    metadata,
    Column("origin", Text, primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("owner", Text, nullable=True),
    Column("lease_until", BigInteger, nullable=True),
)

# Processes that want more of a host's slots than they hold (until `until`, epoch ms, renewed
# while they do): a holder keeps no more than its share, the cap divided among the processes
# that want slots, so every process with work for a host gets some.
host_wants = Table(
    "host_wants",
    metadata,
    Column("origin", Text, primary_key=True),
    Column("owner", Text, primary_key=True),
    Column("until", BigInteger, nullable=False),
)

# Each rate-limited subscription's start schedule shared by several worker processes: the next
# free start slot (epoch microseconds; slots are 1/rate apart) and how many slots the latest
# reservation took. Processes reserve slots in batches with one atomic update each.
rate_slots = Table(
    "rate_slots",
    metadata,
    Column("subscription_id", Text, primary_key=True),
    Column("next_at", BigInteger, nullable=False),
    Column("granted", Integer, nullable=False),
)

# `deliveries.status = 'pending'` spelled as a literal, so the planner matches the partial index.
PENDING = deliveries.c.status == literal_column("'pending'")

attempts = Table(
    "attempts",
    metadata,
    Column("id", Text, primary_key=True),
    Column("delivery_id", Text, nullable=False),
    Column("tenant_id", Text, nullable=False),
    # the delivery's subscription, so an endpoint's statistics read one index range
    Column("subscription_id", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("response_body", Text, nullable=True),  # first 4 KiB
    Index("ix_attempts_delivery", "delivery_id", "created_at"),
    Index("ix_attempts_created", "created_at"),
    Index("ix_attempts_subscription_created", "subscription_id", "created_at"),
)
