"""The only place SQLite and PostgreSQL differ.

Callers ask the `Dialect` for the few statements whose spelling or semantics depend on the
database: insert-or-ignore / upsert, row locks for claiming work, transactional
notifications, the larger/smaller of two values, the other processes' connections; and its
capabilities by name
(`multi_process`, `listen_dsn`, `shared_limits`: whether limits that must hold for the whole
deployment, the delivery engine's per-host cap and per-subscription rates, are kept in the
database). Everything else is portable SQLAlchemy Core. Statements it spells are built once per
dialect through `db/prebuilt.py`; the LISTEN side of notifications is `db/listen.py`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, Table, func, text
from sqlalchemy.dialects import postgresql, sqlite

from causeflow.db.conn import Conn

NOTIFY_CHANNEL = "causeflow_events"


class Dialect:
    name = "base"
    # Several processes share the database: row locks matter and commits are announced.
    multi_process = False
    # Several processes deliver at once, so the delivery limits promised to a receiver (per-host
    # in-flight cap, per-subscription rate) are shared through the database; with one process
    # (SQLite) the engine's own counters are exact and cost nothing.
    shared_limits = False
    # `JOIN LATERAL`: a subquery run once per row of the table before it (PostgreSQL)
    lateral = False

    def insert(self, table: Table) -> Any:
        raise NotImplementedError

    def insert_ignore(self, table: Table, index_elements: list[str]) -> Any:
        return self.insert(table).on_conflict_do_nothing(index_elements=index_elements)

    def skip_locked(self, stmt: Select) -> Select:
        """Row locks for claiming work; SQLite has one writer, so it needs none."""
        return stmt

    async def notify(self, conn: Conn, channel: str, payload: str) -> None:
        """Wake other processes after this transaction commits (no-op with one process)."""

    def listen_dsn(self, url: str) -> str | None:
        """Where to LISTEN for other processes' notifications; None with one process."""
        return None

    def greatest(self, *values: Any) -> ColumnElement[Any]:
        """The largest of `values` (SQLite spells it as the many-argument `max`)."""
        return func.max(*values)

    def least(self, *values: Any) -> ColumnElement[Any]:
        return func.min(*values)

    async def other_connections(self, conn: Conn, application_name: str) -> int:
        """How many connections other than `conn` processes named `application_name` hold on
        this database; none with one process (SQLite's serving lock keeps the others out)."""
        return 0


class SqliteDialect(Dialect):
    name = "sqlite"

    def insert(self, table: Table) -> Any:
        return sqlite.insert(table)


class PostgresDialect(Dialect):
    name = "postgresql"
    multi_process = True
    shared_limits = True
    lateral = True

    def insert(self, table: Table) -> Any:
        return postgresql.insert(table)

    def skip_locked(self, stmt: Select) -> Select:
        return stmt.with_for_update(skip_locked=True)

    async def notify(self, conn: Conn, channel: str, payload: str) -> None:
        # NOTIFY is transactional: listeners hear it only if and when this transaction commits.
        await conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})

    def listen_dsn(self, url: str) -> str | None:
        # the driver's own connection string: the SQLAlchemy URL without the driver suffix
        return url.replace("+asyncpg", "")

    def greatest(self, *values: Any) -> ColumnElement[Any]:
        return func.greatest(*values)

    def least(self, *values: Any) -> ColumnElement[Any]:
        return func.least(*values)

    async def other_connections(self, conn: Conn, application_name: str) -> int:
        query = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = :name AND pid <> pg_backend_pid()"
        )
        return int((await conn.execute(query, {"name": application_name})).scalar_one())


def dialect_for(url: str) -> Dialect:
    return PostgresDialect() if url.startswith("postgresql") else SqliteDialect()
