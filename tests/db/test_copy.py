"""`db/copy.py`: the copy of a SQLite store into PostgreSQL and its verification, table by
table, and what it refuses before writing anything (a target with rows, an unreachable
target, a source behind this version's schema). The store's rows are generated from the
schema itself, so a table added to it is copied and checked here without a word."""

from __future__ import annotations

import datetime
import decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    inspect,
    text,
    update,
)
from sqlalchemy.ext.asyncio import create_async_engine

from causeflow.db.copy import CopyError, copy_store, normalised, verify_copy
from causeflow.db.engine import async_url
from causeflow.db.migrate import migrate
from causeflow.schema import metadata
from causeflow.settings import Settings
from tests.support.inproc import make_settings
from tests.support.pg import fresh_database_async, require_pg
from tests.support.ports import free_port

ROWS = 3  # per table, copied in batches of two


def value_for(table: Table, column: Column[Any], i: int) -> Any:
    if isinstance(column.type, Boolean):
        return i % 2 == 0
    if isinstance(column.type, Integer):
        return i
    if isinstance(column.type, String):
        return f"{table.name}.{column.name}.{i}"
    raise AssertionError(f"{table.name}.{column.name}: a column type this test cannot fill")


async def execute(settings: Settings, *statements: Any) -> list[Any]:
    engine = create_async_engine(async_url(settings))
    try:
        async with engine.begin() as conn:
            return [await conn.execute(s) for s in statements]
    finally:
        await engine.dispose()


async def fetch(settings: Settings, sql: str) -> list[Any]:
    engine = create_async_engine(async_url(settings))
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql))).all())
    finally:
        await engine.dispose()


async def table_names(settings: Settings) -> set[str]:
    engine = create_async_engine(async_url(settings))
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def full_store(tmp_path: Path) -> Settings:
    """A SQLite store at head with ROWS rows in every table of the schema."""
    settings = make_settings(tmp_path)
    await migrate(settings)
    statements = [
        insert(table).values(
            [{c.name: value_for(table, c, i) for c in table.columns} for i in range(1, ROWS + 1)]
        )
        for table in metadata.sorted_tables
    ]
    await execute(settings, *statements)
    return settings


def target_of(source: Settings, url: str) -> Settings:
    return source.model_copy(update={"database_url": url})


@pytest.fixture
async def pg_url():
    require_pg()
    async with fresh_database_async("cf_copy") as url:
        yield url


@pytest.mark.integration
async def test_every_table_of_the_schema_is_copied_and_verified(tmp_path: Path, pg_url: str):
    source = await full_store(tmp_path)
    # what the migrations make is the schema: no table of the store is left out of the copy
    assert await table_names(source) - {"alembic_version"} == set(metadata.tables)
    target = target_of(source, pg_url)
    copied = await copy_store(source, target, metadata, batch_rows=2)
    assert copied == {name: ROWS for name in metadata.tables}
    checks = await verify_copy(source, target, metadata, batch_rows=2)
    assert [c.table for c in checks] == [t.name for t in metadata.sorted_tables]
    assert all(c.ok and c.target_rows == ROWS for c in checks), [c for c in checks if not c.ok]
    # the values themselves, booleans included, arrive as they were
    rows = await fetch(target, "SELECT id, test, position FROM events ORDER BY id")
    assert [tuple(r) for r in rows] == [(f"events.id.{i}", i % 2 == 0, i) for i in (1, 2, 3)]


@pytest.mark.integration
async def test_a_target_row_changed_after_the_copy_is_reported(tmp_path: Path, pg_url: str):
    source = await full_store(tmp_path)
    target = target_of(source, pg_url)
    await copy_store(source, target, metadata)
    events = metadata.tables["events"]
    await execute(target, update(events).where(events.c.id == "events.id.2").values(envelope="{}"))
    checks = {c.table: c for c in await verify_copy(source, target, metadata)}
    assert not checks["events"].ok and checks["events"].target_rows == ROWS
    assert checks["events"].source_sum != checks["events"].target_sum
    assert all(c.ok for name, c in checks.items() if name != "events")
    subscriptions = metadata.tables["subscriptions"]
    await execute(target, subscriptions.delete().where(subscriptions.c.id == "subscriptions.id.1"))
    checks = {c.table: c for c in await verify_copy(source, target, metadata)}
    assert (checks["subscriptions"].source_rows, checks["subscriptions"].target_rows) == (3, 2)
    assert not checks["subscriptions"].ok


@pytest.mark.integration
async def test_a_target_holding_rows_is_refused_and_left_as_it_was(tmp_path: Path, pg_url: str):
    source = await full_store(tmp_path)
    target = target_of(source, pg_url)
    await copy_store(source, target, metadata)
    tenants = metadata.tables["tenants"]
    await execute(target, tenants.delete().where(tenants.c.id != "tenants.id.1"))
    before = await fetch(target, "SELECT count(*) FROM events")
    with pytest.raises(CopyError, match=r"refused: .* already holds rows \(.*tenants.*\)"):
        await copy_store(source, target, metadata)
    assert await fetch(target, "SELECT count(*) FROM events") == before
    assert await fetch(target, "SELECT id FROM tenants") == [("tenants.id.1",)]


@pytest.mark.integration
async def test_a_source_behind_this_versions_schema_is_refused(tmp_path: Path, pg_url: str):
    source = await full_store(tmp_path)
    await execute(source, text("UPDATE alembic_version SET version_num = '0006'"))
    with pytest.raises(CopyError, match=r"revision 0006, this version's is \d+: run `causeflow"):
        await copy_store(source, target_of(source, pg_url), metadata)
    assert await table_names(target_of(source, pg_url)) == set()  # nothing written


@pytest.mark.integration
async def test_an_unreachable_or_missing_target_is_a_clear_error(tmp_path: Path):
    require_pg()
    source = await full_store(tmp_path)
    nobody = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/causeflow"
    with pytest.raises(CopyError, match=r"cannot use the target postgresql://postgres:\*\*\*@"):
        await copy_store(source, target_of(source, nobody), metadata)
    missing = "postgresql://postgres@127.0.0.1:5432/cf_copy_no_such_database"
    with pytest.raises(CopyError, match="cannot use the target .*does not exist"):
        await copy_store(source, target_of(source, missing), metadata)


@pytest.mark.integration
async def test_a_sqlite_target_is_refused(tmp_path: Path):
    source = await full_store(tmp_path)
    other = target_of(source, f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(CopyError, match="not a PostgreSQL URL"):
        await copy_store(source, other, metadata)
    assert not (tmp_path / "other.db").exists()


@pytest.mark.integration
async def test_sequences_continue_after_the_copied_values(tmp_path: Path, pg_url: str):
    """No column of today's schema draws from a sequence (log positions and delivery
    sequence numbers are counters in rows, copied with them); one that did would go on after
    the largest copied value."""
    schema = MetaData()
    things = Table("things", schema, Column("id", Integer, primary_key=True), Column("name", Text))
    source = make_settings(tmp_path)
    await migrate(source)
    target = target_of(source, pg_url)
    for settings in (source, target):
        engine = create_async_engine(async_url(settings))
        async with engine.begin() as conn:
            await conn.run_sync(schema.create_all)
        await engine.dispose()
    await execute(source, insert(things).values([{"id": i, "name": "old"} for i in (3, 9, 41)]))
    await copy_store(source, target, schema)
    (result,) = await execute(target, insert(things).values(name="new").returning(things.c.id))
    assert result.scalar_one() == 42


BOOL = True


@pytest.mark.unit
@pytest.mark.parametrize(
    ("sqlite_value", "pg_value", "boolean"),
    [
        (1, True, BOOL),
        (0, False, BOOL),
        (7, 7, False),
        ("x", "x", False),
        (None, None, False),
        (b"\x00\xff", memoryview(b"\x00\xff"), False),
        (1.5, decimal.Decimal("1.50"), False),
        (
            datetime.datetime(2026, 1, 2, 3, 4, 5),
            datetime.datetime(
                2026, 1, 2, 4, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
            ),
            False,
        ),
        ({"b": 1, "a": [1, 2]}, {"a": [1, 2], "b": 1}, False),
    ],
)
def test_values_normalise_alike_from_either_database(sqlite_value, pg_value, boolean):
    assert normalised(sqlite_value, boolean) == normalised(pg_value, boolean)


@pytest.mark.unit
def test_different_values_stay_different():
    assert normalised(1) != normalised("1")
    assert normalised(True, True) != normalised(False, True)
    assert normalised(b"a") != normalised("a")
    assert normalised(None) != normalised("")
