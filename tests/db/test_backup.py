"""`causeflow backup` and `causeflow restore` on the embedded store: an online backup of a real
`causeflow serve` under write load, restored into a fresh data directory and served again; an
older backup migrated forward; and every refusal as one line with a non-zero exit, leaving the
store as it was."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import create_engine

from causeflow.db.backup import backup_store, known_revisions
from causeflow.db.migrate import alembic_config
from tests.support.cluster import (
    ENV,
    EVENT,
    log_ids,
    paged,
    publish,
    subscribe,
    wait_all_succeeded,
)
from tests.support.processes import Deployment, ServiceProcess
from tests.support.receiver import ThreadedReceiver
from tests.support.traffic import Publisher, finish, run_all

pytestmark = pytest.mark.process

Rows = dict[str, list[dict[str, Any]]]


def dump(path: Path) -> Rows:
    """Every row of every table of a SQLite file, sorted (read-only; the -wal included)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith("sqlite_")
        ]
        return {
            n: sorted((dict(r) for r in conn.execute(f'SELECT * FROM "{n}"')), key=repr)
            for n in names
        }
    finally:
        conn.close()


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def check_consistent(rows: Rows) -> None:
    """A store as of one commit: each tenant's log has positions 1..head with the head row at
    its last one, and each dispatch cursor has made the deliveries of exactly the events up to
    it (the cursor moves in the transaction that creates them)."""
    positions: dict[str, list[int]] = defaultdict(list)
    for ev in rows["events"]:
        positions[ev["tenant_id"]].append(ev["position"])
    heads = {h["tenant_id"]: h["position"] for h in rows["event_heads"]}
    assert set(heads) == set(positions)
    for tenant, found in positions.items():
        assert sorted(found) == list(range(1, heads[tenant] + 1)), tenant
    delivered = {d["event_id"] for d in rows["deliveries"]}
    cursors = {c["tenant_id"]: c["position"] for c in rows["dispatch_cursors"]}
    assert len(cursors) == 2, "no dispatch cursor in the store"
    for ev in rows["events"]:
        if ev["type"] == EVENT:
            expected = ev["position"] <= cursors[ev["tenant_id"]]
            assert (ev["id"] in delivered) == expected, ev["id"]


def by_id(rows: Rows, table: str) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows[table]}


def tenant_events(rows: Rows, tenant_id: str) -> list[dict[str, Any]]:
    """A tenant's events in log order."""
    mine = [ev for ev in rows["events"] if ev["tenant_id"] == tenant_id]
    return sorted(mine, key=lambda ev: ev["position"])


async def count_deliverable(session: aiohttp.ClientSession, base: str, hdr: dict) -> int:
    """How many of the tenant's events a subscription to EVENT receives."""
    return sum(1 for e in await paged(session, base + "/v1/events", hdr) if e["event"] == EVENT)


async def load_and_back_up(
    session: aiohttp.ClientSession, deployment: Deployment, server: ServiceProcess, hdrs: list
) -> tuple[list[Publisher], set[str], Path]:
    """Publishers on both tenants; mid-way a backup from this process (what the publishers
    had been told was accepted just before it is returned: the backup must hold all of it),
    then `causeflow backup` from another. Returns the publishers, that set and the second
    backup."""
    publishers = [
        Publisher(session, [server.base_url], hdr, name=f"p{i}-{n}", pause=0.002)
        for i, hdr in enumerate(hdrs)
        for n in range(3)
    ]
    stop = asyncio.Event()
    tasks = run_all(stop, *publishers)
    await asyncio.sleep(1.5)
    source, base = deployment.data_dir / "causeflow.db", deployment.tmp_path
    acked = {i for p in publishers for i in p.accepted}
    await asyncio.to_thread(backup_store, source, base / "in-process.db")
    target = base / "under-load.db"
    before = sum(len(p.accepted) for p in publishers)
    result = await asyncio.to_thread(deployment.run_cli, "backup", str(target))
    during = sum(len(p.accepted) for p in publishers) - before
    await asyncio.sleep(0.5)
    await finish(stop, tasks)
    assert "backed up" in result.stderr and "key file" in result.stderr
    assert during > 0, "no publish was accepted while the backup ran"
    fresh = dump(base / "in-process.db")
    check_consistent(fresh)
    assert acked <= set(by_id(fresh, "events")), "an acknowledged event is not in the backup"
    return publishers, acked, target


async def test_online_backup_under_load_restores_and_serves(tmp_path: Path) -> None:
    with (
        ThreadedReceiver() as receiver,
        Deployment(tmp_path / "live", env=ENV) as live,
        Deployment(tmp_path / "restored", env=ENV) as restored,
    ):
        tenants = [live.create_tenant("acme"), live.create_tenant("globex")]
        hdrs = [{"X-API-Key": t["apiKey"]} for t in tenants]
        server = live.add_server()
        async with aiohttp.ClientSession() as session:
            subs = [
                await subscribe(session, server.base_url, hdr, receiver.url_for(f"/t{i}"))
                for i, hdr in enumerate(hdrs)
            ]
            publishers, acked, backup = await load_and_back_up(session, live, server, hdrs)
            for hdr, sub in zip(hdrs, subs, strict=True):
                count = await count_deliverable(session, server.base_url, hdr)
                await wait_all_succeeded(session, server.base_url, hdr, [sub], count)
        server.terminate()
        source = live.data_dir / "causeflow.db"
        final, snapshot = dump(source), dump(backup)

        # The backup is one commit point of the live store: consistent, an exact prefix of the
        # final log, holding every event acknowledged before it started.
        check_consistent(snapshot)
        final_events, backup_events = by_id(final, "events"), by_id(snapshot, "events")
        assert len(acked) > 50 and acked <= set(backup_events)
        assert all(final_events[i] == row for i, row in backup_events.items())
        accepted = {i for p in publishers for i in p.accepted}
        assert accepted <= set(final_events) and len(backup_events) < len(final_events)

        # Restored into a fresh directory: row for row the backup; without the key file the
        # restore says the service would not start.
        out = restored.run_cli("restore", str(backup))
        assert "warning" in out.stderr and "keys.json" in out.stderr
        restored_db = restored.data_dir / "causeflow.db"
        assert dump(restored_db) == snapshot
        shutil.copy2(live.data_dir / "keys.json", restored.data_dir / "keys.json")
        await serve_restored(restored, snapshot, tenants, subs, receiver)


async def serve_restored(
    restored: Deployment, snapshot: Rows, tenants: list, subs: list[str], receiver: Any
) -> None:
    """A server on the restored store lists the backup's events, delivers those the backup had
    not delivered, and appends new events after the backup's head."""
    server = restored.add_server()
    async with aiohttp.ClientSession() as session:
        for tenant, sub in zip(tenants, subs, strict=True):
            hdr = {"X-API-Key": tenant["apiKey"]}
            events = tenant_events(snapshot, tenant["tenantId"])
            ids = [ev["id"] for ev in events]
            assert await log_ids(session, server.base_url, hdr) == ids
            new_id = await publish(session, server.base_url, hdr, "after restore")
            assert (await log_ids(session, server.base_url, hdr)) == [*ids, new_id]
            found = query(
                restored.data_dir / "causeflow.db",
                f"SELECT position FROM events WHERE id = '{new_id}'",
            )
            assert found == [(events[-1]["position"] + 1,)]
            # each event delivered once: the dispatch cursor went on from the backup's
            count = sum(1 for ev in events if ev["type"] == EVENT) + 1
            await wait_all_succeeded(session, server.base_url, hdr, [sub], count)


async def test_quiet_backup_and_restore_copy_every_row(tmp_path: Path) -> None:
    with Deployment(tmp_path, env=ENV) as dep:
        tenant = dep.create_tenant("acme")
        server = dep.add_server()
        async with aiohttp.ClientSession() as session:
            hdr = {"X-API-Key": tenant["apiKey"]}
            await subscribe(session, server.base_url, hdr, "http://127.0.0.1:9/hook")
            for n in range(20):
                await publish(session, server.base_url, hdr, f"e{n}")
        server.terminate()
        source = dep.data_dir / "causeflow.db"
        dep.run_cli("backup", str(tmp_path / "b.db"))
        other = tmp_path / "other"
        dep.run_cli("restore", str(tmp_path / "b.db"), "--data-dir", str(other))
        rows = dump(source)
        assert rows["events"] and rows["deliveries"] and rows["dispatch_cursors"]
        assert dump(tmp_path / "b.db") == rows == dump(other / "causeflow.db")
        # a backup is one file (no write-ahead log to carry along), private like the store
        assert query(tmp_path / "b.db", "PRAGMA journal_mode") == [("delete",)]
        assert (tmp_path / "b.db").stat().st_mode & 0o777 == 0o600


def old_store(path: Path, revision: str) -> None:
    """A store made by an earlier version: the schema up to `revision` only."""
    from alembic import command

    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)
    finally:
        engine.dispose()


def test_restore_migrates_an_older_backup_forward(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    old_store(old, known_revisions()[2])
    with Deployment(tmp_path / "dep") as dep:
        out = dep.run_cli("restore", str(old))
        head = known_revisions()[-1]
        assert f"migrated to {head}" in out.stderr
        db = dep.data_dir / "causeflow.db"
        assert query(db, "SELECT version_num FROM alembic_version") == [(head,)]
        dep.create_tenant("after")  # the migrated store works


def digest(directory: Path) -> dict[str, str]:
    """The data directory's files and their contents (the lock file aside: taking the lock to
    restore creates it)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != "serve.lock"
    }


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made once: a data directory holding a store, and a backup of it beside."""
    base = tmp_path_factory.mktemp("template")
    with Deployment(base) as dep:
        dep.create_tenant("acme")
        dep.run_cli("backup", str(base / "good.db"))
    return base


@pytest.fixture
def stores(tmp_path: Path, template: Path):
    """A copy of the template: a store in `data_dir` and `good.db` in `tmp_path`."""
    shutil.copytree(template, tmp_path, dirs_exist_ok=True)
    with Deployment(tmp_path) as dep:
        yield dep


def one_line_refusal(result: Any, needle: str) -> None:
    assert result.returncode != 0, result.stderr
    assert needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()


def future_store(path: Path) -> None:
    shutil.copy(path.parent / "good.db", path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "make, args, env, needle",
    [
        (None, ["good.db"], {}, "already holds a store; add --force"),
        (lambda p: p.write_text("hello\n"), ["file"], {}, "is not a SQLite database"),
        (foreign_sqlite, ["file", "--force"], {}, "not a CauseFlow store"),
        (future_store, ["file", "--force"], {}, "does not know"),
        (None, ["missing.db", "--force"], {}, "does not exist"),
        (None, ["postgresql://postgres@127.0.0.1/cf"], {}, "PostgreSQL URL"),
        (
            None,
            ["good.db", "--force"],
            {"CAUSEFLOW_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/cf"},
            "pg_restore",
        ),
    ],
    ids=[
        "existing-store",
        "not-sqlite",
        "foreign-sqlite",
        "newer-revision",
        "missing",
        "pg-url",
        "pg-store",
    ],
)
def test_restore_refusals(stores: Deployment, make, args, env, needle) -> None:
    base = stores.tmp_path
    if make is not None:
        make(base / "file")
    before = digest(stores.data_dir)
    paths = [str(base / a) if not a.startswith(("-", "postgresql:")) else a for a in args]
    one_line_refusal(stores.run_cli("restore", *paths, check=False, env=env), needle)
    assert digest(stores.data_dir) == before  # the store untouched, no temporary file left


def test_restore_refused_while_served(stores: Deployment) -> None:
    stores.add_server()
    result = stores.run_cli("restore", str(stores.tmp_path / "good.db"), "--force", check=False)
    one_line_refusal(result, "stop it before restoring")


def test_restore_force_replaces_and_a_damaged_backup_leaves_the_store(stores: Deployment) -> None:
    good = stores.tmp_path / "good.db"
    damaged = stores.tmp_path / "damaged.db"
    (root,), (size,) = (
        query(good, "SELECT rootpage FROM sqlite_master WHERE name = 'events'")[0],
        (query(good, "PRAGMA page_size")[0]),
    )
    data = bytearray(good.read_bytes())
    data[(root - 1) * size + 8 : root * size] = b"\xa5" * (size - 8)  # the events table's page
    damaged.write_bytes(bytes(data))
    before = digest(stores.data_dir)
    result = stores.run_cli("restore", str(damaged), "--force", check=False)
    one_line_refusal(result, "damaged.db fails SQLite's integrity check")
    assert digest(stores.data_dir) == before
    # a good backup with --force replaces the store, whose last commits are still in its
    # write-ahead log (a server killed): that log must not be replayed into the restored one
    server = stores.add_server()
    stores.create_tenant("newer")
    server.kill9()
    assert (stores.data_dir / "causeflow.db-wal").stat().st_size > 0
    out = stores.run_cli("restore", str(good), "--force")
    assert "restored" in out.stderr and "warning" not in out.stderr
    names = [row["name"] for row in tenant_list(stores)]
    assert names == ["acme"]
    leftovers = {p.name for p in stores.data_dir.iterdir()} - {"causeflow.db", "keys.json"}
    assert leftovers <= {"serve.lock", "causeflow.db-shm", "causeflow.db-wal"}, leftovers


def tenant_list(dep: Deployment) -> list[dict[str, Any]]:
    import orjson

    out = dep.run_cli("tenant", "list", "--json").stdout
    return [orjson.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "args, env, needle",
    [
        (["good.db"], {}, "exists; add --force"),
        (["b.db", "--data-dir", "empty"], {}, "no store at"),
        (["b.db"], {"CAUSEFLOW_DATABASE_URL": "postgresql://postgres@127.0.0.1/cf"}, "pg_dump"),
    ],
    ids=["exists", "no-store", "pg-store"],
)
def test_backup_refusals(stores: Deployment, args, env, needle) -> None:
    base = stores.tmp_path
    paths = [a if a.startswith("-") else str(base / a) for a in args]
    one_line_refusal(stores.run_cli("backup", *paths, check=False, env=env), needle)
    assert not (base / "b.db").exists()


@pytest.mark.parametrize("name", ["causeflow.db", "link.db", "keys.json", "serve.lock"])
def test_backup_refuses_to_overwrite_the_store_or_its_files(stores: Deployment, name: str) -> None:
    """`--force` replaces an older backup, never the live store (directly or through a link:
    a running service would go on writing into the replaced file), its key file or its lock."""
    (stores.tmp_path / "link.db").symlink_to(stores.data_dir / "causeflow.db")
    target = stores.tmp_path / name if name == "link.db" else stores.data_dir / name
    stores.add_server()

    def others() -> dict[str, str]:  # the serving store's own files change by themselves
        return {k: v for k, v in digest(stores.data_dir).items() if "causeflow.db" not in k}

    before = others()
    inode = (stores.data_dir / "causeflow.db").stat().st_ino
    one_line_refusal(stores.run_cli("backup", str(target), "--force", check=False), "refused")
    assert others() == before
    assert (stores.data_dir / "causeflow.db").stat().st_ino == inode
    assert not list(stores.data_dir.glob(".*.tmp")) and not list(stores.tmp_path.glob(".*.tmp"))


def test_a_fifo_is_neither_a_backup_nor_a_place_for_one(stores: Deployment) -> None:
    """A named pipe (like a device) is no file: restore would wait on it for ever, and backup
    --force would replace it with a file."""
    import os
    import stat

    pipe = stores.tmp_path / "pipe"
    os.mkfifo(pipe)
    before = digest(stores.data_dir)
    refused = stores.run_cli("restore", str(pipe), "--force", check=False, timeout=20)
    one_line_refusal(refused, "not a regular file")
    assert digest(stores.data_dir) == before
    one_line_refusal(stores.run_cli("backup", str(pipe), "--force", check=False), "regular file")
    assert stat.S_ISFIFO(pipe.stat().st_mode)
