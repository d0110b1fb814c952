"""Schema migrations (Alembic), run from code: `causeflow migrate` and at `serve` start.

On PostgreSQL an advisory lock makes concurrent starters migrate one at a time.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from causeflow.db.engine import async_url, null_pool_engine
from causeflow.db.files import prepare_sqlite_store
from causeflow.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x43617573  # "Caus"


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


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


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
            finally:
                if conn.dialect.name == "postgresql":
                    await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})
                    await conn.commit()
    finally:
        await engine.dispose()
