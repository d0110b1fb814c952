"""PostgreSQL harness: throwaway databases on the shared server, and a private cluster."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from tests.support.pg import (
    database_exists,
    fresh_database,
    fresh_database_async,
    pg_available,
    require_pg,
    run_sync,
)
from tests.support.pgcluster import PrivateCluster, find_pg_bin
from tests.support.ports import free_port

HOLD_CONNECTION = """
import asyncio, sys, asyncpg
async def main():
    conn = await asyncpg.connect(sys.argv[1], server_settings={"application_name": "holder"})
    await asyncio.sleep(60)
asyncio.run(main())
"""
ACTIVE_SQL = "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'holder'"


async def fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.mark.integration
def test_require_pg_skips_without_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAUSEFLOW_REQUIRE_PG", raising=False)
    dead = free_port()
    assert not pg_available(port=dead)
    with pytest.raises(pytest.skip.Exception, match=f"not reachable at 127.0.0.1:{dead}"):
        require_pg(port=dead)


@pytest.mark.integration
def test_require_pg_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAUSEFLOW_REQUIRE_PG", "1")
    dead = free_port()
    with pytest.raises(pytest.fail.Exception, match=f"not reachable at 127.0.0.1:{dead}"):
        require_pg(port=dead)


@pytest.mark.process
@pytest.mark.pg
def test_fresh_database_creates_and_drops() -> None:
    require_pg()
    with fresh_database("cf_support") as url:
        name = url.rsplit("/", 1)[1]
        assert name.startswith("cf_support_")
        assert url == f"postgresql://postgres@127.0.0.1:5432/{name}"
        assert run_sync(database_exists(name))
        run_sync(execute(url, "CREATE TABLE t (a int)"))
        # A session still open, as a killed service leaves one, must not block the drop.
        holder = subprocess.Popen([sys.executable, "-c", HOLD_CONNECTION, url])
        try:
            deadline = time.monotonic() + 10
            while not run_sync(fetch(url, ACTIVE_SQL))[0]["n"]:
                assert holder.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        except BaseException:
            holder.kill()
            raise
    try:
        assert not run_sync(database_exists(name))
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.integration
@pytest.mark.pg
def test_fresh_databases_are_distinct() -> None:
    require_pg()
    with fresh_database() as first, fresh_database() as second:
        assert first != second
        run_sync(execute(first, "CREATE TABLE only_here (a int)"))
        rows = run_sync(fetch(second, "SELECT to_regclass('only_here') AS t"))
        assert rows[0]["t"] is None


@pytest.mark.integration
@pytest.mark.pg
async def test_fresh_database_async_inside_a_running_loop() -> None:
    require_pg()  # run_sync works even though this test's loop is running
    async with fresh_database_async() as url:
        name = url.rsplit("/", 1)[1]
        assert (await fetch(url, "SELECT current_database() AS d"))[0]["d"] == name
    assert not await database_exists(name)


@pytest.mark.integration
def test_bad_prefix_is_refused() -> None:
    with pytest.raises(ValueError), fresh_database("Robert'); DROP"):
        pass


@pytest.mark.unit
def test_newest_server_binaries_are_found() -> None:
    bin_dir = find_pg_bin()
    assert (bin_dir / "initdb").exists() and (bin_dir / "postgres").exists()


@pytest.mark.process
@pytest.mark.slow
def test_private_cluster_lifecycle(tmp_path: Path) -> None:
    with PrivateCluster(tmp_path) as cluster:
        assert cluster.running()
        assert cluster.port != 5432
        url = cluster.create_database("lifecycle")
        assert url == f"postgresql://postgres@127.0.0.1:{cluster.port}/lifecycle"
        run_sync(execute(url, "CREATE TABLE t (a int)"))
        run_sync(execute(url, "INSERT INTO t VALUES (1)"))
        rows = run_sync(fetch(cluster.url(), "SHOW max_connections"))
        assert rows[0]["max_connections"] == "200"

        cluster.stop()
        assert not cluster.running()
        assert not pg_available(port=cluster.port)
        cluster.start()
        run_sync(execute(url, "INSERT INTO t VALUES (2)"))

        # A committed row survives a crash of every server process.
        cluster.kill9()
        assert not cluster.running()
        assert not pg_available(port=cluster.port)
        cluster.start()
        assert [r["a"] for r in run_sync(fetch(url, "SELECT a FROM t ORDER BY a"))] == [1, 2]
        assert "not properly shut down" in cluster.log_path.read_text()

        cluster.restart()
        assert run_sync(fetch(url, "SELECT count(*) AS n FROM t"))[0]["n"] == 2
        assert "/cf_cluster_" in cluster.create_database()
        root = cluster.root
        assert root is not None
    assert not root.exists()
    assert not pg_available(port=cluster.port)


@pytest.mark.process
@pytest.mark.slow
def test_private_cluster_discarded_after_kill9() -> None:
    cluster = PrivateCluster()
    with cluster:
        cluster.kill9()
        root = cluster.root
    assert root is not None and not root.exists()
