"""The `Database`: engines, transactions owned by the caller, and after-commit hooks.

SQLite runs one writer by design: every write transaction is a member of a group commit on one
synchronous writer connection in the event loop's thread (`db/group.py`): concurrent writers
share one `BEGIN IMMEDIATE … COMMIT`, each inside its own savepoint, and no statement pays a
hop to a driver thread. Reads use a separate aiosqlite pool (WAL lets them run beside the
writer). PostgreSQL uses one asyncpg pool for both. A `Tx` collects callbacks that run only
after its commit succeeded (wake-ups of stream readers and workers).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Executable, Table, event
from sqlalchemy.engine import Connection, ScalarResult
from sqlalchemy.engine import Dialect as SQLDialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from causeflow.db.conn import AnyResult, Conn, DriverParams, Params
from causeflow.db.dialect import Dialect, dialect_for
from causeflow.db.files import prepare_sqlite_store
from causeflow.db.group import SyncConnection
from causeflow.settings import Settings

if TYPE_CHECKING:
    from causeflow.db.group import GroupCommitter


APPLICATION_NAME = "causeflow"  # the PostgreSQL application_name of the service's connections


def async_url(settings: Settings) -> str:
    url = settings.database_url
    if not url:
        return f"sqlite+aiosqlite:///{settings.sqlite_path}"
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


class Tx:
    """One write transaction: its connection and what to run once it has committed.

    It reads and writes like its connection (it is a `Conn` itself), so a repository function
    taking a `Conn` takes a `Tx` as well.
    """

    __slots__ = ("conn", "db", "_after", "appended", "heads")

    def __init__(self, conn: Conn, db: Database) -> None:
        self.conn = conn
        self.db = db
        self._after: list[Callable[[], Any]] = []
        self.appended: list[tuple[str, int, str]] = []  # (tenant_id, position, type) appended
        self.heads: dict[str, bool] = {}  # tenant id -> its log head is locked (True: announced)

    def after_commit(self, callback: Callable[[], Any]) -> None:
        self._after.append(callback)

    @property
    def dialect(self) -> SQLDialect:
        return self.conn.dialect

    async def execute(self, stmt: Executable, params: Params | None = None, /) -> AnyResult:
        return await self.conn.execute(stmt, params)

    async def scalar(self, stmt: Executable, params: Mapping[str, Any] | None = None, /) -> Any:
        return await self.conn.scalar(stmt, params)

    async def scalars(self, stmt: Executable, params: Params | None = None, /) -> ScalarResult[Any]:
        return await self.conn.scalars(stmt, params)

    async def exec_driver_sql(self, sql: str, params: DriverParams | None = None, /) -> AnyResult:
        return await self.conn.exec_driver_sql(sql, params)

    async def insert_many(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """INSERT `rows` (the same keys each, plain values: str, int, bool, None) in one
        executemany of the driver's own SQL.

        For the hottest writes (deliveries, attempts): SQLAlchemy's per-row parameter handling
        costs as much as SQLite's own work, and these values need none of its type processing.
        The statement is still SQLAlchemy's, compiled once per dialect and set of columns.
        """
        if not rows:
            return
        keys = tuple(rows[0])
        dialect = self.conn.dialect
        cache_key = (dialect.name, table.name, keys)
        sql = _INSERT_SQL.get(cache_key)
        if sql is None:
            compiled = table.insert().compile(dialect=dialect, column_keys=list(keys))
            sql = _INSERT_SQL[cache_key] = str(compiled)
        values = itemgetter(*keys)
        if len(keys) == 1:  # itemgetter of one key answers the value, not a 1-tuple
            params = [(values(row),) for row in rows]
        else:
            params = [values(row) for row in rows]
        writer = self.conn
        if isinstance(writer, SyncConnection):  # SQLite: straight to the driver
            writer.driver_rows(sql, params, many=True)
            return
        await self.conn.exec_driver_sql(sql, params)

    async def returning(self, stmt: Executable, params: Mapping[str, Any]) -> list[Any]:
        """The rows of `stmt` (a statement built once: `db.prebuilt`) run with `params`
        (plain values: str, int, bool, None), e.g. an INSERT … RETURNING.

        On SQLite it is compiled once and run on the writer's driver connection directly
        (`SyncConnection.driver_rows`): the hottest statements cost several times more in
        SQLAlchemy's execution than in SQLite.
        """
        writer = self.conn
        if isinstance(writer, SyncConnection):
            sql, names = _driver_sql(writer, stmt)
            return writer.driver_rows(sql, tuple(params[n] for n in names))
        return list((await self.conn.execute(stmt, params)).all())

    async def returning_each(
        self, stmt: Executable, rows: Sequence[Mapping[str, Any]]
    ) -> list[Any]:
        """The rows `stmt` (an INSERT … RETURNING built once) returns for each parameter set of
        `rows` (the same keys each, plain values), together.

        On SQLite one run per set on the writer's driver connection: SQLAlchemy's batched form
        of a returning executemany costs several times SQLite's own work per row. Elsewhere one
        executemany, which SQLAlchemy batches into few statements.
        """
        if not rows:
            return []
        writer = self.conn
        if not isinstance(writer, SyncConnection):
            return list((await self.conn.execute(stmt, list(rows))).all())
        sql, names = _driver_sql(writer, stmt, tuple(rows[0]))
        out: list[Any] = []
        for row in rows:
            out.extend(writer.driver_rows(sql, tuple(row[n] for n in names)))
        return out


def _driver_sql(
    writer: SyncConnection, stmt: Executable, keys: tuple[str, ...] | None = None
) -> tuple[str, tuple[str, ...]]:
    """`stmt` compiled once for the SQLite writer (with these column keys, for an INSERT given
    its values): its driver SQL and its parameters' names in order."""
    found = _DRIVER_SQL.get((id(stmt), keys))
    if found is None or found[0] is not stmt:
        column_keys = list(keys) if keys is not None else None
        compiled = stmt.compile(  # type: ignore[attr-defined]
            dialect=writer.dialect, column_keys=column_keys
        )
        assert compiled.positiontup is not None  # SQLite's qmark style
        found = (stmt, str(compiled), tuple(compiled.positiontup))
        _DRIVER_SQL[(id(stmt), keys)] = found
    return found[1], found[2]


async def rows_of(conn: Conn, stmt: Executable, params: Mapping[str, Any]) -> list[Any]:
    """The rows of `stmt` (built once) with `params`, read through any connection: in a write
    transaction by `Tx.returning` (on SQLite straight from the writer's driver connection), so
    index them by position, not by name."""
    if isinstance(conn, Tx):
        return await conn.returning(stmt, params)
    return list((await conn.execute(stmt, params)).all())


def rows_changed(result: AnyResult, expected: int) -> int:
    """How many rows the UPDATE or DELETE behind `result` changed; `expected` when the driver
    reports no count: asyncpg answers -1 for an executemany (SQLite's driver sums the counts of
    its parameter sets)."""
    count = result.rowcount
    return count if count is not None and count >= 0 else expected


# (dialect, table, columns) -> the INSERT in the driver's parameter style
_INSERT_SQL: dict[tuple[str, str, tuple[str, ...]], str] = {}
# (id of a statement built once, the column keys it was compiled with) -> (it, its SQLite
# text, its parameters' names in order)
_DRIVER_SQL: dict[tuple[int, tuple[str, ...] | None], tuple[Executable, str, tuple[str, ...]]] = {}


def check_synchronous(value: str) -> str:
    sync = value.upper()
    if sync not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError("CAUSEFLOW_SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA")
    return sync


def _sqlite_reader(url: str, settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=4,
        max_overflow=8,
        pool_timeout=60,
        connect_args={"timeout": 30, "check_same_thread": False},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control from the driver so BEGIN is ours to spell.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


class Database:
    def __init__(
        self,
        settings: Settings,
        *,
        pool_size: int | None = None,
        application_name: str = APPLICATION_NAME,
    ) -> None:
        self.settings = settings
        self.url = async_url(settings)
        self.dialect: Dialect = dialect_for(self.url)
        self._write_lock: asyncio.Lock | None = None
        self._group: GroupCommitter[Tx] | None = None  # SQLite group commit, made on first use
        # called after each commit that appended events, with their (tenant_id, position)
        self.commit_listeners: list[Callable[[list[tuple[str, int, str]]], None]] = []
        self.reader: AsyncEngine
        if self.dialect.name == "sqlite":
            prepare_sqlite_store(settings)
            check_synchronous(settings.sqlite_synchronous)
            self.reader = _sqlite_reader(self.url, settings)
            self._write_lock = asyncio.Lock()
        else:
            size = pool_size or settings.db_pool_size
            self.writer = create_async_engine(
                self.url,
                pool_size=size,
                max_overflow=size,
                pool_timeout=10,
                pool_pre_ping=True,
                connect_args={
                    "timeout": 5,
                    "command_timeout": 30,
                    # how `causeflow keys rotate` tells that service processes are connected
                    "server_settings": {"application_name": application_name},
                },
            )
            self.reader = self.writer

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A write transaction owned by the caller: commits on normal exit, rolls back on error,
        returns only once committed, then runs the after-commit callbacks.

        On SQLite it is a member of a group commit (concurrent callers share one COMMIT, each in
        its own savepoint; see db/group.py); it must not be nested in another transaction.
        """
        if self._write_lock is None:
            return self._pg_transaction()
        if self._group is None:
            from causeflow.db.group import GroupCommitter

            self._group = GroupCommitter(
                self.settings,
                self._write_lock,
                lambda conn: Tx(conn, self),  # type: ignore[arg-type]
                self._committed,
            )
        return self._group.member()

    @asynccontextmanager
    async def _pg_transaction(self) -> AsyncIterator[Tx]:
        async with self.writer.begin() as conn:
            tx = Tx(conn, self)
            yield tx
        self._committed(tx)

    def _committed(self, tx: Tx | None) -> None:
        if tx is None:
            return
        if tx.appended:
            for listener in self.commit_listeners:
                listener(tx.appended)
        for callback in tx._after:
            callback()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        if self._group is not None:
            await self._group.close()
            self._group = None
        if self._write_lock is None:
            await self.writer.dispose()
        else:
            await self.reader.dispose()


def null_pool_engine(url: str) -> AsyncEngine:
    """A short-lived engine for CLI commands and migrations."""
    return create_async_engine(url, poolclass=NullPool)
