"""Copy a SQLite store into an empty PostgreSQL database: `causeflow migrate-store`.

The copy takes the schema as a parameter (`causeflow.schema.metadata`, passed by the CLI): the
database layer knows no feature, and a table added to the schema is copied without a word here.

The steps, each refusing before anything is written when it cannot go on:

1. the source is at this version's head revision (else: `causeflow migrate` it first);
2. the target is reachable and holds no row in any table of the schema;
3. the target is migrated to head (`db/migrate.py`, as at every start);
4. every table, in foreign-key order (`metadata.sorted_tables`), is streamed from the source
   in batches (never a whole table in memory) into the target, values as they are: sealed
   secrets stay sealed (the same key file opens them), ids, log positions, sequence numbers,
   cursors and leases unchanged. The source is read in one read transaction (one commit
   point), the target written in one transaction: a failed copy leaves it empty (a text value
   with a NUL character, which SQLite keeps and PostgreSQL cannot, is refused by name);
5. PostgreSQL sequences behind columns of the schema (none today: log positions and delivery
   sequence numbers are counters in rows, `event_heads` and `subscription_sequences`, which
   the copy carries over) are set past the largest copied value.

`verify_copy` then compares both sides table by table: the row count and a SHA-256 over the rows
in primary-key order, each value normalised so that what SQLite and PostgreSQL return for the
same stored value hashes alike (booleans, integers, times, bytes, JSON documents).

The source must not change meanwhile: the CLI holds the data directory's serving lock, so no
`causeflow serve` runs on it during the copy.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from alembic.script import ScriptDirectory
from sqlalchemy import Boolean, Integer, MetaData, String, Table, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import ColumnElement

from causeflow.db.engine import async_url
from causeflow.db.migrate import SchemaError, alembic_config, current_revision, migrate
from causeflow.settings import Settings

BATCH_ROWS = 1000
CONNECT_TIMEOUT_SECONDS = 10


class CopyError(Exception):
    """The copy refused or failed; the message is one line saying what to do."""


@dataclass(frozen=True)
class TableCheck:
    """One table on both sides: row counts and checksums."""

    table: str
    source_rows: int
    target_rows: int
    source_sum: str
    target_sum: str

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.source_sum == self.target_sum


_USERINFO_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def shown(settings: Settings) -> str:
    """The store's URL for messages, without its password."""
    try:
        url = make_url(settings.database_url or async_url(settings))
        return url.render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: shown as given, but for its password
        return _USERINFO_PASSWORD.sub(r"\1***@", settings.database_url)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _engine(settings: Settings) -> AsyncEngine:
    url = async_url(settings)
    args = {"timeout": CONNECT_TIMEOUT_SECONDS} if url.startswith("postgresql") else {}
    return create_async_engine(url, poolclass=NullPool, connect_args=args)


async def check_source(source: Settings) -> None:
    """The source is a CauseFlow store at this version's head revision."""
    head = head_revision()
    try:
        revision = await current_revision(source)
    except Exception as exc:  # the driver's errors, whatever they are: one line
        raise CopyError(f"cannot read the source store {shown(source)}: {exc}") from exc
    if revision is None:
        raise CopyError(f"the source {shown(source)} is not a CauseFlow store (no schema)")
    if revision != head:
        raise CopyError(
            f"the source store is at schema revision {revision}, this version's is {head}: "
            "run `causeflow migrate` on it first (with the service stopped), then copy it"
        )


async def _tables_with_rows(conn: AsyncConnection, metadata: MetaData) -> list[str]:
    present = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    missing = sorted(set(metadata.tables) - present)
    if "alembic_version" in present and missing:
        stamped = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        if stamped == head_revision():  # migrating would do nothing: the tables never come
            raise CopyError(
                f"refused: the target's alembic_version says {stamped}, but the schema's "
                f"tables are not there ({len(missing)} missing, e.g. {missing[0]}); drop and "
                "re-create the database, then copy again"
            )
    full = []
    for table in metadata.sorted_tables:
        if table.name in present:
            if (await conn.execute(select(1).select_from(table).limit(1))).first():
                full.append(table.name)
    return full


async def check_target(target: Settings, metadata: MetaData) -> None:
    """The target is a PostgreSQL database that answers and holds no row of the schema."""
    if not target.is_postgres:
        raise CopyError(
            f"the target {shown(target)} is not a PostgreSQL URL (postgresql://user@host/db)"
        )
    try:
        engine = _engine(target)
    except ValueError as exc:  # the driver cannot read the URL (a port that is no number, …)
        raise CopyError(f"cannot use the target {shown(target)}: not a valid URL") from exc
    try:
        async with engine.connect() as conn:
            full = await _tables_with_rows(conn, metadata)
    except CopyError:
        raise
    except Exception as exc:  # refused, unknown host, no such database, bad password, …
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CopyError(f"cannot use the target {shown(target)}: {reason}") from exc
    finally:
        await engine.dispose()
    if full:
        raise CopyError(
            f"refused: the target {shown(target)} already holds rows ({', '.join(full)}); "
            "migrate-store copies into an empty database only (create a new one, or drop "
            "and re-create this one if it is the remains of an earlier attempt)"
        )


async def source_counts(source: Settings, metadata: MetaData) -> dict[str, int]:
    engine = _engine(source)
    try:
        async with engine.connect() as conn:
            counts = {}
            for table in metadata.sorted_tables:
                rows = await conn.scalar(select(func.count()).select_from(table))
                counts[table.name] = int(rows or 0)
            return counts
    finally:
        await engine.dispose()


async def _snapshot(conn: AsyncConnection) -> None:
    """Read the source as of one commit: one read transaction for the whole copy."""
    if conn.dialect.name == "sqlite":
        await conn.exec_driver_sql("BEGIN")


async def _batches(
    conn: AsyncConnection, table: Table, batch_rows: int
) -> AsyncIterator[list[dict[str, Any]]]:
    stmt = select(table).order_by(*_ordering(table, conn.dialect.name))
    result = await conn.stream(stmt.execution_options(yield_per=batch_rows))
    async for part in result.partitions(batch_rows):
        yield [dict(row._mapping) for row in part]


async def _reset_sequences(conn: AsyncConnection, metadata: MetaData) -> list[str]:
    """Set every sequence owned by an integer column of the schema past its largest value."""
    reset = []
    for table in metadata.sorted_tables:
        for column in table.columns:
            if not isinstance(column.type, Integer):
                continue
            seq = await conn.scalar(
                text("SELECT pg_get_serial_sequence(:t, :c)"),
                {"t": f'"{table.name}"', "c": column.name},
            )
            if seq is None:
                continue
            top = await conn.scalar(select(func.max(column)))
            await conn.execute(
                text("SELECT setval(:s, :v, false)"), {"s": seq, "v": int(top or 0) + 1}
            )
            reset.append(str(seq))
    return reset


async def copy_store(
    source: Settings,
    target: Settings,
    metadata: MetaData,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Copy every table of `metadata` from `source` into the empty PostgreSQL `target`, after
    migrating it; the rows copied per table. Refuses (CopyError) before writing anything when
    the source is not at head or the target is unreachable or not empty."""
    await check_source(source)
    await check_target(target, metadata)
    try:
        await migrate(target)
    except SchemaError as exc:
        raise CopyError(f"the target {shown(target)}: {exc}") from exc
    except DBAPIError as exc:  # one line, without the migration's SQL
        reason = " ".join(str(exc.orig).split()) or type(exc.orig).__name__
        raise CopyError(
            f"cannot migrate the target {shown(target)}: {reason} (if its alembic_version "
            "does not match its tables, drop and re-create the database, then copy again)"
        ) from exc
    src_engine, dst_engine = _engine(source), _engine(target)
    try:
        async with src_engine.connect() as src, dst_engine.begin() as dst:
            await _snapshot(src)
            copied = await _copy_tables(src, dst, metadata, batch_rows, progress)
            await _reset_sequences(dst, metadata)
            await src.rollback()
    except CopyError:
        raise
    except DBAPIError as exc:  # one line, never the driver's dump of the statement and rows
        reason = " ".join(str(exc.orig).split()) or type(exc.orig).__name__
        raise CopyError(
            f"the copy into {shown(target)} failed, and nothing was written: {reason}"
        ) from exc
    finally:
        await src_engine.dispose()
        await dst_engine.dispose()
    return copied


async def _copy_tables(
    src: AsyncConnection,
    dst: AsyncConnection,
    metadata: MetaData,
    batch_rows: int,
    progress: Callable[[str, int], None] | None,
) -> dict[str, int]:
    copied: dict[str, int] = {}
    for table in metadata.sorted_tables:
        copied[table.name] = 0
        texts = [c.name for c in table.columns if isinstance(c.type, String)]
        async for rows in _batches(src, table, batch_rows):
            _refuse_nul(table, texts, rows)
            await dst.execute(table.insert(), rows)
            copied[table.name] += len(rows)
        if progress is not None:
            progress(table.name, copied[table.name])
    return copied


def _refuse_nul(table: Table, texts: list[str], rows: list[dict[str, Any]]) -> None:
    """PostgreSQL text cannot hold a NUL character, which SQLite keeps: name the first one."""
    for row in rows:
        for name in texts:
            value = row[name]
            if isinstance(value, str) and "\x00" in value:
                key = ", ".join(str(row[c.name]) for c in table.primary_key.columns)
                raise CopyError(
                    f"refused: {table.name} row {key or '?'} has a NUL character in {name}, "
                    "which PostgreSQL text cannot hold; nothing was written. Change that value "
                    "in the SQLite store (e.g. rename it through the API), then copy again"
                )


def _ordering(table: Table, dialect: str) -> list[ColumnElement[Any]]:
    """Primary-key order, the same on both databases: bytewise for text (SQLite's BINARY
    collation; PostgreSQL's "C", whatever the database's own collation)."""
    columns = list(table.primary_key.columns) or list(table.columns)
    if dialect != "postgresql":
        return list(columns)
    return [c.collate("C") if isinstance(c.type, String) else c for c in columns]


def normalised(value: Any, boolean: bool = False) -> Any:
    """One stored value as the checksum sees it: alike whichever database returned it."""
    if value is None:
        return None
    if boolean:
        return bool(value)
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | decimal.Decimal):
        return str(decimal.Decimal(value).normalize())
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "hex:" + bytes(value).hex()
    if isinstance(value, dict | list):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return str(value)


async def table_digest(conn: AsyncConnection, table: Table, batch_rows: int) -> tuple[int, str]:
    """(rows, SHA-256 hex) of `table` read in primary-key order."""
    flags = [isinstance(c.type, Boolean) for c in table.columns]
    digest = hashlib.sha256()
    count = 0
    async for rows in _batches(conn, table, batch_rows):
        for row in rows:
            values = [normalised(v, b) for v, b in zip(row.values(), flags, strict=True)]
            digest.update(orjson.dumps(values) + b"\n")
        count += len(rows)
    return count, digest.hexdigest()


async def _digests(
    settings: Settings, metadata: MetaData, batch_rows: int
) -> dict[str, tuple[int, str]]:
    engine = _engine(settings)
    try:
        async with engine.connect() as conn:
            await _snapshot(conn)
            return {t.name: await table_digest(conn, t, batch_rows) for t in metadata.sorted_tables}
    finally:
        await engine.dispose()


async def verify_copy(
    source: Settings, target: Settings, metadata: MetaData, *, batch_rows: int = BATCH_ROWS
) -> list[TableCheck]:
    """Every table of `metadata` compared on both sides, in foreign-key order."""
    before = await _digests(source, metadata, batch_rows)
    try:
        after = await _digests(target, metadata, batch_rows)
    except Exception as exc:
        raise CopyError(f"cannot read the target {shown(target)}: {exc}") from exc
    return [
        TableCheck(name, rows, after[name][0], digest, after[name][1])
        for name, (rows, digest) in before.items()
    ]
