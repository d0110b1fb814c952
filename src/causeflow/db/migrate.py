"""Schema migrations (Alembic), run from code: `causeflow migrate` and at `serve` start.

On PostgreSQL an advisory lock makes concurrent starters migrate one at a time. A schema already
at this version's head is left alone without a statement that needs more than reading, so
processes may run as a role that cannot change the schema (docs/deploying.md). Two states are
refused with a `SchemaError` saying what to do: a schema newer than this version knows (an older
process starting after an upgrade), and one that needs migrating by a role that may not.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from causeflow.db.engine import async_url, null_pool_engine
from causeflow.db.files import prepare_sqlite_store
from causeflow.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x43617573  # "Caus"
_INSUFFICIENT_PRIVILEGE = "42501"


class SchemaError(Exception):
    """The schema cannot be brought to this version's head here; the message says why."""


def alembic_config(
    connection: Connection | None = None, metadata: MetaData | None = None
) -> Config:
    """`metadata`: the complete schema (`causeflow.schema.metadata`), needed only to generate
    a revision."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    cfg.attributes["metadata"] = metadata
    return cfg


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> None:
    cfg = alembic_config(connection)
    script = ScriptDirectory.from_config(cfg)
    head = script.get_current_head()
    current = _current(connection)
    if current == head:
        return
    if current is not None:
        try:
            script.get_revision(current)
        except CommandError:
            raise SchemaError(
                f"the database schema is at revision {current}, newer than this version of "
                f"CauseFlow knows (its latest is {head}): run the version that migrated it"
            ) from None
    try:
        command.upgrade(cfg, "head")
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != _INSUFFICIENT_PRIVILEGE:
            raise
        raise SchemaError(
            f"the database schema is at revision {current or 'none'} and this version needs "
            f"{head}, but this database role may not change the schema: run `causeflow "
            "migrate` with the schema owner's CAUSEFLOW_DATABASE_URL first"
        ) from None


async def migrate(settings: Settings) -> None:
    url = async_url(settings)
    if url.startswith("sqlite"):
        prepare_sqlite_store(settings)
    engine = null_pool_engine(url)
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _LOCK_ID})
                await conn.commit()
            else:
                await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            try:
                await conn.run_sync(_upgrade)
                await conn.commit()
            except BaseException:
                await conn.rollback()  # a failed statement aborted it; the unlock needs a new one
                raise
            finally:
                if conn.dialect.name == "postgresql":
                    await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})
                    await conn.commit()
    finally:
        await engine.dispose()


async def current_revision(settings: Settings) -> str | None:
    engine = null_pool_engine(async_url(settings))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_current)
    finally:
        await engine.dispose()


async def store_exists(settings: Settings) -> bool:
    """Whether the store of these settings exists already: a SQLite file with content, or a
    PostgreSQL database whose schema has been created. Nothing is created to find out."""
    from causeflow.db.files import sqlite_file, sqlite_store_exists

    if sqlite_file(settings) is not None or not settings.is_postgres:
        return sqlite_store_exists(settings)
    return await current_revision(settings) is not None
