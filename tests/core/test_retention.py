"""Retention: old events, deliveries, attempts, idempotency keys and delivery ids are purged in
batches; purged ids are expired cursors; pending deliveries are kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from causeflow.event.log import append_event
from causeflow.event.tables import events
from causeflow.retention import DAY_MS, purge_once
from causeflow.webhook.tables import deliveries
from tests.support.clock import FrozenClock
from tests.support.inproc import make_settings, running_service

pytestmark = pytest.mark.integration


async def test_purge_old_rows_in_batches(tmp_path: Path, database_url: str):
    clock = FrozenClock()
    settings = make_settings(tmp_path, database_url, retention_days=30, retention_batch_size=7)
    async with running_service(settings, clock) as svc:
        tenant = await svc.tenant()
        old_ms = clock.now_ms() - 31 * DAY_MS
        async with svc.ctx.db.transaction() as tx:
            old = [
                await append_event(
                    tx,
                    tenant_id=tenant.id,
                    event_type="incident.created",
                    data={"i": i},
                    now_ms=old_ms,
                )
                for i in range(20)
            ]
            for i, status in enumerate(("succeeded", "pending")):
                await tx.execute(
                    deliveries.insert().values(
                        id=f"msg_old{i}",
                        tenant_id=tenant.id,
                        subscription_id="sub_x",
                        event_id=old[0].id,
                        event_type="incident.created",
                        status=status,
                        attempts=1,
                        created_at=old_ms,
                        updated_at=old_ms,
                    )
                )
            fresh = await append_event(
                tx,
                tenant_id=tenant.id,
                event_type="incident.created",
                data={"i": "new"},
                now_ms=clock.now_ms(),
            )
        purged = await purge_once(svc.ctx)
        assert purged["events"] == 20 and purged["deliveries"] == 1
        async with svc.ctx.db.read() as conn:
            left = (
                (await conn.execute(select(events.c.id).where(events.c.tenant_id == tenant.id)))
                .scalars()
                .all()
            )
            kept = (await conn.execute(select(func.count()).select_from(deliveries))).scalar()
        assert fresh.id in left and old[5].id not in left
        assert kept == 1  # the pending delivery stays
        resp = await svc.client.get(
            "/v1/events", headers=tenant.key_headers, params={"after": old[5].id}
        )
        assert resp.status_code == 410 and resp.json()["error"] == "cursor_expired"
        # nothing more to do the second time
        assert not any((await purge_once(svc.ctx)).values())
