"""Group commit on SQLite: concurrent callers' write transactions share one COMMIT.

`Database.transaction()` (on SQLite) runs each caller's work inside its own SAVEPOINT of a group
transaction on a synchronous writer connection, in the event loop's thread: an SQLite statement
takes microseconds, while a hop to a driver thread per statement (several per statement with
aiosqlite) costs far more under load. The group holds the process's write lock from
`BEGIN IMMEDIATE` to `COMMIT`, so plain `transaction()`s wait for it as for any writer.

A group stays open while callers keep joining: when its last member finishes, it yields once
to the loop so that requests already in flight can join, then commits (at most `max_members`
per group, to bound the wait of the first). Every member returns only after the shared COMMIT;
a member whose work raises is rolled back to its savepoint alone; a failed COMMIT fails every
member. Not reentrant: a member must not open another transaction of the same database.
WAL checkpoints (an fsync) never run on this connection: a thread of their own runs them, at
a lower CPU priority, at most once a second while groups commit. Under sustained writes a
passive checkpoint never catches up with the writer, and a WAL that only grows makes every page
lookup slower; so once it holds more than `RESTART_FRAMES`, the committer stops opening groups
for the moment a RESTART checkpoint needs to copy the rest and start the WAL over (writers wait
asynchronously; the event loop keeps serving everything else).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from sqlalchemy import Executable, create_engine, event
from sqlalchemy.engine import Connection, Dialect, Engine, RootTransaction, ScalarResult
from sqlalchemy.exc import DBAPIError, OperationalError

from causeflow.db.conn import AnyResult, DriverParams, Params
from causeflow.settings import Settings

TxT = TypeVar("TxT")  # the engine's transaction handle (`db.engine.Tx`)

P = ParamSpec("P")
R = TypeVar("R")

BUSY_RETRY_SECONDS = 30.0  # how long BEGIN waits for another process's writer, without blocking
CHECKPOINT_SECONDS = 1.0  # at most one background WAL checkpoint per second of group commits
WRITER_CACHE_KIB = 65536  # the writer connection's page cache
RESTART_FRAMES = 4096  # WAL pages (16 MiB at 4 KiB) beyond which the WAL is started over
CHECKPOINT_NICENESS = 10  # how much lower the checkpoint thread's CPU priority is


def _background_priority() -> None:
    """Lower the calling thread's CPU priority (Linux schedules threads one by one).

    A checkpoint copies pages for milliseconds at a time; on a machine with few cores it would
    otherwise take a core from the event loop's thread, whose every stall is request latency.
    """
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + CHECKPOINT_NICENESS))


class SyncConnection:
    """The awaitable face of the synchronous writer connection (what `Tx.conn` offers)."""

    __slots__ = ("sync_connection",)

    def __init__(self, conn: Connection) -> None:
        self.sync_connection = conn

    @property
    def dialect(self) -> Dialect:
        return self.sync_connection.dialect

    async def execute(self, stmt: Executable, params: Params | None = None, /) -> AnyResult:
        if params is None:
            return self.sync_connection.execute(stmt)
        return self.sync_connection.execute(stmt, params)

    async def scalar(self, stmt: Executable, params: Mapping[str, Any] | None = None, /) -> Any:
        return (await self.execute(stmt, params)).scalar()

    async def scalars(self, stmt: Executable, params: Params | None = None, /) -> ScalarResult[Any]:
        return (await self.execute(stmt, params)).scalars()

    async def exec_driver_sql(self, sql: str, params: DriverParams | None = None, /) -> AnyResult:
        return self.sync_connection.exec_driver_sql(sql, params)

    def driver_rows(self, sql: str, params: Any, *, many: bool = False) -> list[Any]:
        """Run driver SQL (qmark parameters, plain values) on the DBAPI connection itself and
        return its rows: for the hottest statements, whose cost through SQLAlchemy's execution
        context is several times SQLite's own. It runs in the group's transaction like every
        statement here, and an error reaches the caller as SQLAlchemy's (`DBAPIError`), as
        from any other statement."""
        raw = self.sync_connection.connection.dbapi_connection
        assert raw is not None
        try:
            cursor = raw.executemany(sql, params) if many else raw.execute(sql, params)
            return cursor.fetchall()
        except sqlite3.Error as exc:
            raise DBAPIError.instance(
                sql, params, exc, sqlite3.Error, dialect=self.sync_connection.dialect
            ) from exc

    async def run_sync(
        self, fn: Callable[Concatenate[Connection, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        return fn(self.sync_connection, *args, **kwargs)


def sync_sqlite_engine(path: str, synchronous: str) -> Engine:
    engine = create_engine(f"sqlite:///{path}", poolclass=None)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # BEGIN is ours to spell
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        # Never block the event loop waiting for another process's writer: BEGIN retries
        # asynchronously instead (see _begin).
        cur.execute("PRAGMA busy_timeout=0")
        cur.execute("PRAGMA foreign_keys=ON")
        # The writer touches index pages all over (random keys): keep far more of them than
        # the default 2 MiB, so a growing database does not turn writes into reads.
        cur.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        # Transient b-trees in memory: an `UPDATE … RETURNING` gathers its rows in one, and
        # with temporary files each such statement opens and closes a file (three to four
        # times the log head upsert's own cost). The writer's statements touch a few rows
        # each; large sorts and copies run on connections of their own (migrations, backups,
        # the store copy).
        cur.execute("PRAGMA temp_store=MEMORY")
        # A checkpoint (copying the WAL back, with an fsync) would stall the event loop: this
        # connection never runs one; `GroupCommitter._checkpoint` does, in a thread of its own.
        cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Straight to the driver (once per group): errors are SQLAlchemy's all the same.
        raw = conn.connection.dbapi_connection
        assert raw is not None
        try:
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise DBAPIError.instance("BEGIN IMMEDIATE", (), exc, sqlite3.Error) from exc

    return engine


class _Group:
    __slots__ = ("ready", "done", "turn", "joined", "pending", "closed", "trans")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ready: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.turn = asyncio.Lock()  # members' work runs one at a time
        self.joined = 0
        self.pending = 0  # joined and not finished
        self.closed = False
        self.trans: RootTransaction | None = None


def _opened(group: _Group) -> bool:
    ready = group.ready
    return ready.done() and not ready.cancelled() and ready.exception() is None


class GroupCommitter(Generic[TxT]):
    """The group commit of one `Database` (db/engine.py), which hands it its write lock, how to
    wrap the writer connection in a transaction handle, and what to run after each commit."""

    def __init__(
        self,
        settings: Settings,
        lock: asyncio.Lock,
        new_tx: Callable[[SyncConnection], TxT],
        committed: Callable[[TxT | None], None],
        *,
        max_members: int = 256,
    ) -> None:
        self.lock = lock
        self._new_tx = new_tx
        self._committed = committed
        self.max_members = max_members
        self.engine = sync_sqlite_engine(
            str(settings.sqlite_path), settings.sqlite_synchronous.upper()
        )
        self.conn = self.engine.connect()
        self._group: _Group | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._path = str(settings.sqlite_path)
        self._checkpoint_conn: sqlite3.Connection | None = None
        # Checkpoints run in a thread of their own, at a lower CPU priority than the loop's.
        self._checkpoint_thread = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sqlite-checkpoint", initializer=_background_priority
        )
        self._checkpointing: asyncio.Future[None] | None = None
        self._last_checkpoint = time.monotonic()
        self.checkpoints = 0
        self.restarts = 0  # RESTART checkpoints (the WAL started over)
        self.commits = 0  # groups committed (observability and tests)
        self.members = 0  # members that took part in a committed group

    @contextlib.asynccontextmanager
    async def member(self) -> AsyncIterator[TxT]:
        group = self._group
        if group is None or group.closed or group.joined >= self.max_members:
            group = self._group = _Group(asyncio.get_running_loop())
            # Opening runs in its own task: a caller cancelled while waiting for the write lock
            # must not take the group's opening down with it.
            task = asyncio.create_task(self._begin(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        group.joined += 1
        group.pending += 1
        tx: TxT | None = None
        try:
            await asyncio.shield(group.ready)
            async with group.turn:
                self._check_alive()
                # Plain driver SQL: SQLAlchemy's nested-transaction objects cost more than the
                # statements; its root transaction (BEGIN/COMMIT) is unaffected by these.
                raw = self.conn.connection.dbapi_connection
                assert raw is not None
                raw.execute("SAVEPOINT member")
                tx = self._new_tx(SyncConnection(self.conn))
                try:
                    yield tx
                except BaseException:
                    tx = None
                    # Fails only when SQLite already dropped the whole transaction (disk
                    # full, I/O error): `_check_alive` then fails the rest of the group.
                    with contextlib.suppress(Exception):
                        raw.execute("ROLLBACK TO member")
                        raw.execute("RELEASE member")
                    raise
                raw.execute("RELEASE member")
        finally:
            group.pending -= 1
            if group.pending == 0 and _opened(group):
                # In a task of its own: the group commits (and frees the write lock) even if
                # this caller is cancelled meanwhile.
                commit = asyncio.ensure_future(self._maybe_commit(group))
                self._tasks.add(commit)
                commit.add_done_callback(self._tasks.discard)
                await asyncio.shield(commit)
        await asyncio.shield(group.done)
        self._committed(tx)

    async def _begin(self, group: _Group) -> None:
        try:
            await self.lock.acquire()
            try:
                deadline = time.monotonic() + BUSY_RETRY_SECONDS
                while True:
                    try:
                        group.trans = self.conn.begin()
                        break
                    except OperationalError as exc:
                        if "locked" not in str(exc) or time.monotonic() > deadline:
                            raise
                        self.conn.rollback()
                        await asyncio.sleep(0.01)
            except BaseException:
                self.lock.release()
                raise
        except asyncio.CancelledError:
            group.closed = True
            group.ready.cancel()
            raise
        except Exception as exc:  # noqa: BLE001  # handed to every member through `ready`
            group.closed = True
            group.ready.set_exception(exc)
            group.ready.exception()  # retrieved: each member re-raises it from its shield
            return
        group.ready.set_result(None)

    async def _maybe_commit(self, group: _Group) -> None:
        # Let requests already in flight reach their write and join before committing.
        await asyncio.sleep(0)
        if group.pending or group.closed:
            return  # someone joined: the last of them commits
        group.closed = True
        if self._group is group:
            self._group = None
        try:
            assert group.trans is not None
            self._check_alive()
            group.trans.commit()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                group.trans.rollback()  # type: ignore[union-attr]
            group.done.set_exception(exc)
            group.done.exception()
        else:
            self.commits += 1
            self.members += group.joined
            group.done.set_result(None)
            self._maybe_checkpoint()
        finally:
            self.lock.release()

    def _check_alive(self) -> None:
        # Some errors (disk full, I/O) make SQLite roll the whole transaction back by itself;
        # what would follow must not run in autocommit mode, outside the group.
        if not self.conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            raise RuntimeError("the group transaction was rolled back by SQLite")

    def _maybe_checkpoint(self) -> None:
        now = time.monotonic()
        if self._checkpointing is not None or now - self._last_checkpoint < CHECKPOINT_SECONDS:
            return
        self._last_checkpoint = now
        self._checkpointing = asyncio.ensure_future(self._checkpoint_round())
        self._checkpointing.add_done_callback(self._checkpointed)

    async def _checkpoint_round(self) -> None:
        loop = asyncio.get_running_loop()
        frames = await loop.run_in_executor(self._checkpoint_thread, self._checkpoint, "PASSIVE")
        if frames >= RESTART_FRAMES:
            # Copy what the passive round could not and start the WAL over, with no group open.
            async with self.lock:
                await loop.run_in_executor(self._checkpoint_thread, self._checkpoint, "RESTART")
                self.restarts += 1

    def _checkpointed(self, task: asyncio.Future[None]) -> None:
        self._checkpointing = None
        if not task.cancelled():
            task.exception()  # a failed checkpoint is retried with the next one

    def _checkpoint(self, mode: str) -> int:
        """PASSIVE copies what it can without waiting for readers or the writer; RESTART (run
        while no group is open) waits up to a second for readers. Returns the WAL's frames."""
        if self._checkpoint_conn is None:
            self._checkpoint_conn = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False
            )
            self._checkpoint_conn.execute("PRAGMA busy_timeout=1000")
        row = self._checkpoint_conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        self.checkpoints += 1
        return int(row[1]) if row is not None else 0

    async def close(self) -> None:
        if self._checkpointing is not None:
            with contextlib.suppress(Exception):
                await self._checkpointing
        self._checkpoint_thread.shutdown(wait=True)
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
        self.conn.close()
        self.engine.dispose()
