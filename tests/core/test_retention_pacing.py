"""The retention purge of deliveries reads each tenant's oldest finished deliveries in batches,
rests between full batches in proportion to the time each took (CAUSEFLOW_RETENTION_PAUSE_RATIO),
and always gets through: old pending deliveries in front of the finished ones hold nothing up,
every tenant's own retention is kept, and nothing newer or pending goes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from causeflow import retention
from causeflow.retention import DAY_MS, purge_once
from causeflow.tenant import plans
from causeflow.webhook import repository as webhook_store
from causeflow.webhook.tables import deliveries
from tests.support.clock import FrozenClock
from tests.support.inproc import make_settings, running_service

pytestmark = pytest.mark.integration


def _delivery(tenant_id: str, name: str, status: str, at: int) -> dict[str, Any]:
    return {
        "id": f"msg_{name}",
        "tenant_id": tenant_id,
        "subscription_id": "sub_x",
        "event_id": f"evt_{name}",
        "event_type": "incident.created",
        "status": status,
        "attempts": 1,
        "created_at": at,
        "updated_at": at,
    }


def _store(plain: str, own: str, now: int) -> tuple[list[dict[str, Any]], set[str]]:
    """The rows, and the ids the purge must remove."""
    rows = []
    for i in range(3):  # the oldest of all, still pending: kept, and in front of the rest
        rows.append(_delivery(plain, f"pending{i}", "pending", now - 50 * DAY_MS + i))
    for i in range(11):  # past the setting's 30 days
        status = ("succeeded", "failed", "cancelled")[i % 3]
        rows.append(_delivery(plain, f"old{i}", status, now - 40 * DAY_MS + i))
    for i in range(2):
        rows.append(_delivery(plain, f"recent{i}", "succeeded", now - 3 * DAY_MS + i))
    for i in range(6):  # past its own 2 days
        rows.append(_delivery(own, f"own_old{i}", "succeeded", now - 3 * DAY_MS + i))
    rows.append(_delivery(own, "own_fresh", "succeeded", now - DAY_MS))
    doomed = {r["id"] for r in rows if "old" in r["id"]}
    return rows, doomed


@pytest.mark.parametrize("ratio", [0.0, 2.0])
async def test_purge_rests_between_batches_and_gets_through(
    tmp_path: Path, database_url: str, ratio: float, monkeypatch: pytest.MonkeyPatch
):
    clock = FrozenClock()
    settings = make_settings(
        tmp_path,
        database_url,
        retention_days=30,
        retention_batch_size=4,
        retention_pause_ratio=ratio,
        run_workers=False,
    )
    async with running_service(settings, clock) as svc:
        plain, own = await svc.tenant(), await svc.tenant("own")
        now = clock.now_ms()
        rows, doomed = _store(plain.id, own.id, now)
        async with svc.ctx.db.transaction() as tx:
            await plans.write_limits(
                tx, svc.ctx.db.dialect, own.id, {"delivery_retention_days": 2}, now
            )
            await tx.execute(deliveries.insert(), rows)
        rests: list[float] = []

        async def rest(seconds: float) -> None:
            rests.append(seconds)
            await asyncio.sleep(seconds)

        with monkeypatch.context() as patch:
            patch.setattr(retention, "asyncio", SimpleNamespace(sleep=rest))
            started = time.monotonic()
            purged = await purge_once(svc.ctx)
            took = time.monotonic() - started
        async with svc.ctx.db.read() as conn:
            left = set((await conn.execute(select(deliveries.c.id))).scalars().all())
        assert purged["deliveries"] == len(doomed) == 17
        assert left == {r["id"] for r in rows} - doomed
        # one rest after each full batch: 11 rows of the setting's sweep (2 full batches of
        # 4), 6 of the tenant's own (1)
        assert len(rests) == 3, rests
        if ratio == 0:
            assert rests == [0.0, 0.0, 0.0]
        else:
            # each as long as `ratio` times its batch: together at most ratio/(1+ratio) of it all
            assert all(r > 0 for r in rests), rests
            assert sum(rests) <= took * ratio / (1 + ratio), (rests, took)
        assert not any((await purge_once(svc.ctx)).values())


async def test_purge_batch_reads_an_index_on_sqlite(tmp_path: Path):
    """The deliveries purge selects its batch from each tenant's (tenant_id, created_at)
    range, never by scanning the table."""
    import sqlite3

    from sqlalchemy.dialects import sqlite

    from causeflow.db.migrate import migrate

    settings = make_settings(tmp_path)
    await migrate(settings)

    class Capture:
        db = SimpleNamespace(dialect=SimpleNamespace(lateral=False))
        stmts: list[Any] = []

        async def execute(self, stmt: Any) -> Any:
            self.stmts.append(stmt)
            return SimpleNamespace(rowcount=0)

    cap = Capture()
    scope = plans.tenants_without_retention("delivery_retention_days")
    await webhook_store.purge_finished_deliveries(cap, 1, 500, tenants=scope)  # type: ignore[arg-type]
    sql = str(
        cap.stmts[0].compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    )
    db = sqlite3.connect(settings.sqlite_path)
    try:
        plan = [str(r[-1]) for r in db.execute("EXPLAIN QUERY PLAN " + sql)]
    finally:
        db.close()
    assert "SCAN deliveries" not in plan, plan
    assert any(
        "USING INDEX ix_deliveries_tenant_created (tenant_id=? AND created_at<?)" in step
        for step in plan
    ), plan
