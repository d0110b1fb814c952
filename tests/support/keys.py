"""Keys for test services on PostgreSQL.

The service never keeps its keys in the database, and on PostgreSQL (no data directory) it
refuses to start unless they come from the environment or a key file. Every process of a
test deployment on one PostgreSQL database, in-process or not, gets these same two values.
"""

from __future__ import annotations

PG_JWT_SECRET = "test-jwt-secret-for-postgresql-deployments-0123456789"
PG_SECRET_KEY = "5e" * 32


def is_pg(database_url: str | None) -> bool:
    return bool(database_url) and str(database_url).startswith(("postgresql", "postgres:"))


def pg_key_settings(database_url: str | None) -> dict[str, str]:
    """`Settings` overrides giving a PostgreSQL service its keys (nothing for SQLite)."""
    if not is_pg(database_url):
        return {}
    return {"jwt_secret": PG_JWT_SECRET, "secret_key": PG_SECRET_KEY}


def pg_key_env(database_url: str | None) -> dict[str, str]:
    """The same as environment variables, for service processes."""
    return {f"CAUSEFLOW_{k.upper()}": v for k, v in pg_key_settings(database_url).items()}
