"""Tables of credentials: API keys (hashed), the ids of the sealing keys in use, sessions."""

from sqlalchemy import BigInteger, Column, Index, Table, Text

from causeflow.db.metadata import SEALED, metadata

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("key_hash", Text, nullable=False, unique=True),  # SHA-256 hex of the whole key
    Column("prefix", Text, nullable=False),  # first characters, for display only
    Column("scopes", Text, nullable=False),  # JSON list
    Column(
        "webhook_secret_enc", Text, nullable=True, info=SEALED
    ),  # inbound signing secret, encrypted
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Index("ix_api_keys_tenant", "tenant_id", "id"),
)

# The ids of the sealing keys this database's values are sealed under (`sealing_key_id:<id>`),
# never the keys themselves (see auth/keys.py; earlier versions kept the keys here).
service_keys = Table(
    "service_keys",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Dashboard sessions: the browser holds only the id; the credential stays here.
sessions = Table(
    "sessions",
    metadata,
    Column("id_hash", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("principal", Text, nullable=False, info=SEALED),  # JSON; its credential sealed
    Column("csrf_token", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)
