"""`Database.transaction()` on SQLite (group commit): concurrent callers share
a COMMIT, each is still its own unit, and each returns only once its work is committed."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, func, select

from causeflow.db.engine import Database
from tests.support.inproc import make_settings

pytestmark = pytest.mark.integration

meta = MetaData()
items = Table("group_items", meta, Column("id", Integer, primary_key=True), Column("v", Text))


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(make_settings(tmp_path))
    async with database.transaction() as tx:
        await tx.conn.run_sync(meta.create_all)
    try:
        yield database
    finally:
        await database.dispose()


async def count(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(items))).scalar_one())


async def test_concurrent_callers_share_commits_and_see_their_rows_committed(db: Database):
    async def one(i: int) -> int:
        async with db.transaction() as tx:
            await tx.execute(items.insert(), {"id": i, "v": f"v{i}"})
        # answered only after the commit: another connection sees the row at once
        async with db.read() as conn:
            return int((await conn.execute(select(items.c.id).where(items.c.id == i))).scalar())

    assert await asyncio.gather(*(one(i) for i in range(50))) == list(range(50))
    assert await count(db) == 50
    assert db._group is not None
    # the fixture's table creation was one member and one commit of its own
    assert db._group.members == 51 and db._group.commits < 50


async def test_a_failing_member_is_rolled_back_alone(db: Database):
    class Boom(Exception):
        pass

    async def one(i: int) -> None:
        async with db.transaction() as tx:
            await tx.execute(items.insert(), {"id": i, "v": "x"})
            if i % 3 == 0:
                raise Boom(i)

    results = await asyncio.gather(*(one(i) for i in range(12)), return_exceptions=True)
    assert [isinstance(r, Boom) for r in results] == [i % 3 == 0 for i in range(12)]
    async with db.read() as conn:
        ids = sorted((await conn.execute(select(items.c.id))).scalars())
    assert ids == [i for i in range(12) if i % 3]

    # a statement error (duplicate key) also stays with its member
    async def dup() -> None:
        async with db.transaction() as tx:
            await tx.execute(items.insert(), {"id": 100, "v": "ok"})
            await tx.execute(items.insert(), {"id": 1, "v": "taken"})

    async def fine() -> None:
        async with db.transaction() as tx:
            await tx.execute(items.insert(), {"id": 101, "v": "ok"})

    got = await asyncio.gather(dup(), fine(), return_exceptions=True)
    assert isinstance(got[0], Exception) and got[1] is None
    async with db.read() as conn:
        ids = set((await conn.execute(select(items.c.id))).scalars())
    assert 101 in ids and 100 not in ids


async def test_after_commit_hooks_and_listeners_run_once_committed(db: Database):
    seen: list[tuple[str, int]] = []
    db.commit_listeners.append(lambda appended: seen.append(("listener", len(appended))))

    async def one(i: int) -> None:
        async with db.transaction() as tx:
            await tx.execute(items.insert(), {"id": i, "v": "x"})
            tx.appended.append(("ten_x", i, "t"))
            tx.after_commit(lambda: seen.append(("after", i)))

    await asyncio.gather(*(one(i) for i in range(5)))
    assert sorted(s for s in seen if s[0] == "after") == [("after", i) for i in range(5)]
    assert seen.count(("listener", 1)) == 5


async def test_groups_and_plain_transactions_interleave(db: Database):
    async def grouped(i: int) -> None:
        async with db.transaction() as tx:
            await tx.execute(items.insert(), {"id": i, "v": "g"})

    async def plain(i: int) -> None:
        async with db.transaction() as tx:
            await tx.execute(items.insert().values(id=i, v="p"))

    jobs = [grouped(i) if i % 2 else plain(i) for i in range(40)]
    await asyncio.wait_for(asyncio.gather(*jobs), timeout=20)
    assert await count(db) == 40


async def test_another_process_holding_the_lock_is_waited_for_without_blocking_the_loop(
    db: Database,
):
    release = threading.Event()
    locked = threading.Event()

    def other_writer() -> None:
        conn = sqlite3.connect(db.settings.sqlite_path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(60)  # released by the test; the cap only ends a test gone wrong
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=other_writer)
    thread.start()
    assert await asyncio.to_thread(locked.wait, 5)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while not release.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    async def write() -> None:
        async with db.transaction() as tx:
            await tx.execute(items.insert(), {"id": 1, "v": "after the other"})

    tick_task = asyncio.create_task(ticker())
    write_task = asyncio.create_task(write())
    # The loop keeps running while the write waits: the ticker gets its turns meanwhile.
    async with asyncio.timeout(30):
        while ticks < 10:
            await asyncio.sleep(0.01)
    assert not write_task.done()  # still waiting for the other process's writer
    release.set()
    await asyncio.wait_for(write_task, 10)
    await tick_task
    await asyncio.to_thread(thread.join, 5)
    assert await count(db) == 1


async def test_a_cancelled_caller_does_not_break_its_group(db: Database):
    async def one(i: int, hold: asyncio.Event | None = None) -> None:
        async with db.transaction() as tx:
            await tx.execute(items.insert(), {"id": i, "v": "x"})
            if hold is not None:
                await hold.wait()

    hold = asyncio.Event()
    slow = asyncio.create_task(one(0, hold))
    others = [asyncio.create_task(one(i)) for i in range(1, 6)]
    await asyncio.sleep(0.05)
    slow.cancel()  # cancelled inside its work: rolled back alone
    await asyncio.gather(*others)
    with pytest.raises(asyncio.CancelledError):
        await slow
    async with db.read() as conn:
        ids = sorted((await conn.execute(select(items.c.id))).scalars())
    assert ids == [1, 2, 3, 4, 5]


async def test_the_wal_is_checkpointed_off_the_event_loop(
    db: Database, monkeypatch: pytest.MonkeyPatch
):
    from causeflow.db import group as group_module

    monkeypatch.setattr(group_module, "CHECKPOINT_SECONDS", 0.0)
    for i in range(3):
        async with db.transaction() as tx:
            await tx.execute(items.insert(), {"id": i, "v": "x" * 5000})
        committer = db._group
        assert committer is not None
        if committer._checkpointing is not None:
            await committer._checkpointing
    assert committer.checkpoints >= 1
    # the writer itself never checkpoints (that would stall the loop)
    raw = committer.conn.connection.dbapi_connection
    assert raw is not None
    assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    # ... and the thread that does runs at a lower CPU priority than the loop's
    checkpointers = [t for t in threading.enumerate() if t.name.startswith("sqlite-checkpoint")]
    assert checkpointers
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    for thread in checkpointers:
        assert thread.native_id is not None
        assert os.getpriority(os.PRIO_PROCESS, thread.native_id) > loop_nice


async def test_the_writer_keeps_transient_btrees_in_memory(db: Database):
    # `UPDATE … RETURNING` (the log head) gathers its rows in a transient b-tree: in a
    # temporary file by default, which costs the statement an open and a close each time
    async with db.transaction() as tx:
        await tx.execute(items.insert(), {"id": 1, "v": "x"})
    committer = db._group
    assert committer is not None
    raw = committer.conn.connection.dbapi_connection
    assert raw is not None
    assert raw.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY
