"""The delivery search (`GET /v1/deliveries`) reads an index range whatever the store's size:
`status=pending` reads the partial index of pending deliveries (the queue), never the tenant's
whole history."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.dialects import sqlite

from causeflow.db.migrate import migrate
from causeflow.webhook import repository
from causeflow.webhook.repository import DeliveryQuery
from tests.support.inproc import make_settings

pytestmark = pytest.mark.integration


class _Nothing:
    def all(self) -> list[Any]:
        return []


class _Capture:
    """A connection that keeps the statement it is given and answers no rows."""

    def __init__(self) -> None:
        self.stmts: list[Any] = []

    async def execute(self, stmt: Any, params: Any = None) -> _Nothing:
        self.stmts.append(stmt)
        return _Nothing()


async def _plan(db: sqlite3.Connection, query: DeliveryQuery) -> str:
    cap = _Capture()
    await repository.list_deliveries(cap, "ten_x", query, before=None, limit=51)  # type: ignore[arg-type]
    sql = str(
        cap.stmts[0].compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    )
    return " / ".join(str(row[-1]) for row in db.execute("EXPLAIN QUERY PLAN " + sql))


async def test_pending_search_reads_the_pending_index(tmp_path: Path):
    settings = make_settings(tmp_path)
    await migrate(settings)
    db = sqlite3.connect(settings.sqlite_path)
    try:
        plan = await _plan(db, DeliveryQuery(status="pending"))
        assert "USING INDEX ix_deliveries_pending " in plan + " ", plan
        # the other statuses keep the tenant's newest-first range
        plan = await _plan(db, DeliveryQuery(status="failed"))
        assert "USING INDEX ix_deliveries_tenant_created" in plan, plan
    finally:
        db.close()


async def test_type_search_reads_each_types_range(tmp_path: Path):
    settings = make_settings(tmp_path)
    await migrate(settings)
    db = sqlite3.connect(settings.sqlite_path)
    try:
        # one type: its own newest-first range, whether the tenant has that type or not
        plan = await _plan(db, DeliveryQuery(event_types=frozenset({"incident.created"})))
        assert "USING INDEX ix_deliveries_tenant_type_created (tenant_id=? AND event_type=?)" in (
            plan
        ), plan
        assert "SCAN deliveries" not in plan, plan
        # several types: one such range each, each stopping after a page
        plan = await _plan(db, DeliveryQuery(event_types=frozenset({"a.x", "b.y", "c.z"})))
        assert plan.count("USING INDEX ix_deliveries_tenant_type_created") == 3, plan
        assert "ix_deliveries_tenant_created" not in plan, plan
        assert "SCAN deliveries" not in plan, plan
        # a type with a subscription, a status or a time window keeps the type's range
        for query in (
            DeliveryQuery(event_types=frozenset({"a.x"}), subscription_id="sub_1"),
            DeliveryQuery(event_types=frozenset({"a.x"}), status="failed"),
            DeliveryQuery(event_types=frozenset({"a.x"}), since_ms=1, until_ms=2),
        ):
            plan = await _plan(db, query)
            assert "USING INDEX ix_deliveries_tenant_type_created" in plan, (query, plan)
        # more types than a statement should carry ranges for: the tenant's range
        many = frozenset(f"t.{i}" for i in range(30))
        plan = await _plan(db, DeliveryQuery(event_types=many))
        assert "USING INDEX ix_deliveries_tenant_created (tenant_id=?)" in plan, plan
        # a search by event or incident keeps its plan without the type, and the queue's
        # keeps the pending index
        for by_event in (DeliveryQuery(event_id="evt_1"), DeliveryQuery(incident_id="inc_1")):
            typed = DeliveryQuery(
                event_types=frozenset({"a.x", "b.y"}),
                event_id=by_event.event_id,
                incident_id=by_event.incident_id,
            )
            plan = await _plan(db, typed)
            assert plan == await _plan(db, by_event), plan
            assert "ix_deliveries_tenant_type_created" not in plan, plan
        plan = await _plan(db, DeliveryQuery(event_types=frozenset({"a.x"}), status="pending"))
        assert "USING INDEX ix_deliveries_pending " in plan + " ", plan
    finally:
        db.close()


async def test_event_search_reads_the_events_deliveries(tmp_path: Path):
    """`eventId` reads that event's few deliveries from ix_deliveries_tenant_event and sorts
    them, instead of walking the tenant's newest-first range until a page of them turns up
    (the whole history: an event has a delivery per subscription and replay)."""
    settings = make_settings(tmp_path)
    await migrate(settings)
    db = sqlite3.connect(settings.sqlite_path)
    try:
        for query in (
            DeliveryQuery(event_id="evt_1"),
            DeliveryQuery(event_id="evt_1", status="failed", subscription_id="sub_1"),
            DeliveryQuery(event_id="evt_1", event_types=frozenset({"a.x"})),
        ):
            plan = await _plan(db, query)
            assert "USING INDEX ix_deliveries_tenant_event (tenant_id=? AND event_id=?)" in plan, (
                query,
                plan,
            )
    finally:
        db.close()
