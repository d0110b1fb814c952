"""The `Database`: engines, transactions owned by the caller, and after-commit hooks.

SQLite runs one writer by design: write transactions take an in-process lock and
`BEGIN IMMEDIATE` on a single writer connection, while reads use a separate pool (WAL lets them
run beside the writer). PostgreSQL uses one asyncpg pool for both. A `Tx` collects callbacks
that run only after its commit succeeded (wake-ups of stream readers and workers).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from causeflow.db.dialect import Dialect, dialect_for
from causeflow.settings import Settings

if TYPE_CHECKING:
    from causeflow.db.group import GroupCommitter


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
    """One write transaction: its connection and what to run once it has committed."""

    __slots__ = ("conn", "db", "_after", "appended")

    def __init__(self, conn: AsyncConnection, db: Database) -> None:
        self.conn = conn
        self.db = db
        self._after: list[Callable[[], Any]] = []
        self.appended: list[tuple[str, int, str]] = []  # (tenant_id, position, type) appended

    def after_commit(self, callback: Callable[[], Any]) -> None:
        self._after.append(callback)

    async def execute(self, stmt: Any, params: Any = None) -> Any:
        return await self.conn.execute(stmt, params)


def _sqlite_engine(url: str, settings: Settings, *, writer: bool) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=1 if writer else 4,
        max_overflow=0 if writer else 8,
        pool_timeout=60,
        connect_args={"timeout": 30, "check_same_thread": False},
    )
    sync = settings.sqlite_synchronous.upper()
    if sync not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError("CAUSEFLOW_SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA")

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control from the driver so BEGIN is ours to spell.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={sync}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # The writer takes the write lock at BEGIN so it never has to upgrade mid-transaction.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


class Database:
    def __init__(self, settings: Settings, *, pool_size: int | None = None) -> None:
        self.settings = settings
        self.url = async_url(settings)
        self.dialect: Dialect = dialect_for(self.url)
        self._write_lock: asyncio.Lock | None = None
        self._group: GroupCommitter | None = None  # SQLite group commit, made on first use
        # called after each commit that appended events, with their (tenant_id, position)
        self.commit_listeners: list[Callable[[list[tuple[str, int, str]]], None]] = []
        if self.dialect.name == "sqlite":
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.writer = _sqlite_engine(self.url, settings, writer=True)
            self.reader = _sqlite_engine(self.url, settings, writer=False)
            self._write_lock = asyncio.Lock()
        else:
            size = pool_size or settings.db_pool_size
            self.writer = create_async_engine(
                self.url,
                pool_size=size,
                max_overflow=size,
                pool_timeout=10,
                pool_pre_ping=True,
                connect_args={"timeout": 5, "command_timeout": 30},
            )
            self.reader = self.writer

    @property
    def is_sqlite(self) -> bool:
        return self.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction owned by the caller: commits on normal exit, rolls back on error,
        and runs the after-commit callbacks only once the commit succeeded."""
        lock = self._write_lock if self._write_lock is not None else nullcontext()
        async with lock:
            async with self.writer.begin() as conn:
                tx = Tx(conn, self)
                yield tx
        if tx.appended:
            for listener in self.commit_listeners:
                listener(tx.appended)
        for callback in tx._after:
            callback()

    def group_transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A write transaction that may share its COMMIT with concurrent callers (SQLite).

        Same contract as `transaction()` (commits on normal exit, rolls back this caller's
        work on error, returns only once committed, then runs after-commit callbacks); on
        SQLite concurrent callers are grouped into one commit (see db/group.py), on
        PostgreSQL it is `transaction()`. For short, hot write paths such as inbound alerts.
        """
        if self._write_lock is None:
            return self.transaction()
        if self._group is None:
            from causeflow.db.group import GroupCommitter

            self._group = GroupCommitter(self)
        return self._group.member()

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
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def null_pool_engine(url: str) -> AsyncEngine:
    """A short-lived engine for CLI commands and migrations."""
    return create_async_engine(url, poolclass=NullPool)
