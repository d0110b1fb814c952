"""The migrations build exactly the schema the code declares, on both databases, and the
delivery queue's queries are served by the partial index of pending deliveries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from causeflow.db.engine import async_url, null_pool_engine
from causeflow.db.migrate import migrate
from causeflow.schema import metadata
from tests.support.inproc import make_settings

pytestmark = pytest.mark.integration


def _index_names(conn: Any, table: str) -> set[str]:
    from sqlalchemy import inspect

    return {ix["name"] for ix in inspect(conn).get_indexes(table)}


async def test_migrated_schema_matches_the_declared_tables(tmp_path: Path, database_url: str):
    settings = make_settings(tmp_path, database_url)
    await migrate(settings)
    engine = null_pool_engine(async_url(settings))
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
            names = await conn.run_sync(_index_names, "deliveries")
    finally:
        await engine.dispose()
    assert diff == []
    # every index on deliveries costs each delivery's writes: these and no more
    assert names == {
        "ix_deliveries_pending",  # the workers' claims
        "ix_deliveries_subscription_created",  # a subscription's deliveries, newest first
        # a subscription's pending ones by sequence: its backlog, and the ordered claim's
        # "nothing earlier pending" test
        "ix_deliveries_pending_subscription",
        # no sequence number twice per subscription (the dispatcher's guarantee, enforced)
        "ux_deliveries_subscription_sequence",
        "ix_deliveries_tenant_created",  # the search across subscriptions, newest first
        "ix_deliveries_tenant_event",  # where an event (or an incident's events) went
        # the search by event type: a type the tenant lacks is a probe, not a walk of its
        # history (0012; its cost per delivery is measured in docs/performance.md)
        "ix_deliveries_tenant_type_created",
    }


async def test_claims_use_the_pending_index_on_sqlite(tmp_path: Path):
    import sqlite3

    from sqlalchemy.dialects import sqlite

    from causeflow.webhook import queue

    settings = make_settings(tmp_path)
    await migrate(settings)
    conn = sqlite3.connect(settings.sqlite_path)
    try:
        for stmt in (queue._ANY_DUE, queue._CANDIDATES):
            sql = str(stmt.compile(dialect=sqlite.dialect()))
            plan = conn.execute("EXPLAIN QUERY PLAN " + sql, [1] * sql.count("?")).fetchall()
            assert "USING INDEX ix_deliveries_pending" in plan[0][3], plan
    finally:
        conn.close()
