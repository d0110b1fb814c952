"""Retention: old events, deliveries, attempts, idempotency keys and delivery ids are purged in
batches; purged ids are expired cursors; pending deliveries are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from causeflow.event.log import append_event
from causeflow.event.tables import event_heads, events
from causeflow.retention import DAY_MS, purge_once
from causeflow.tenant import plans
from causeflow.tenant.tables import tenant_limits
from causeflow.webhook import repository as webhook_store
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
        await _dispatched(svc)
        purged = await purge_once(svc.ctx)
        # the event of the pending delivery stays until it is delivered
        assert purged["events"] == 19 and purged["deliveries"] == 1
        async with svc.ctx.db.read() as conn:
            left = (
                (await conn.execute(select(events.c.id).where(events.c.tenant_id == tenant.id)))
                .scalars()
                .all()
            )
            kept = (await conn.execute(select(func.count()).select_from(deliveries))).scalar()
        assert fresh.id in left and old[0].id in left and old[5].id not in left
        assert kept == 1  # the pending delivery stays
        resp = await svc.client.get(
            "/v1/events", headers=tenant.key_headers, params={"after": old[5].id}
        )
        assert resp.status_code == 410 and resp.json()["error"] == "cursor_expired"
        # nothing more to do the second time
        assert not any((await purge_once(svc.ctx)).values())


async def test_each_tenant_keeps_its_rows_as_long_as_its_retention(
    tmp_path: Path, database_url: str
):
    """A tenant's own retention (set by a platform admin) decides how long its events and
    finished deliveries stay; a tenant without one follows CAUSEFLOW_RETENTION_DAYS."""
    clock = FrozenClock()
    settings = make_settings(tmp_path, database_url, retention_days=30)
    async with running_service(settings, clock) as svc:
        short, long_, plain = (
            await svc.tenant("short"),
            await svc.tenant("long"),
            await svc.tenant(),
        )
        now = clock.now_ms()
        async with svc.ctx.db.transaction() as tx:
            await plans.write_limits(
                tx,
                svc.ctx.db.dialect,
                short.id,
                {"event_retention_days": 1, "delivery_retention_days": 2},
                now,
            )
            await plans.write_limits(
                tx, svc.ctx.db.dialect, long_.id, {"event_retention_days": 60}, now
            )
            for tenant in (short, long_, plain):
                for age in (3, 40):  # days
                    at = now - age * DAY_MS
                    event = await append_event(
                        tx, tenant_id=tenant.id, event_type="incident.created", data={}, now_ms=at
                    )
                    await tx.execute(
                        deliveries.insert().values(
                            id=f"msg_{tenant.id}_{age}",
                            tenant_id=tenant.id,
                            subscription_id="sub_x",
                            event_id=event.id,
                            event_type="incident.created",
                            status="succeeded",
                            attempts=1,
                            created_at=at,
                            updated_at=at,
                        )
                    )
        await _dispatched(svc)
        purged = await purge_once(svc.ctx)
        async with svc.ctx.db.read() as conn:

            async def ages(table: Any, tenant: Any) -> list[int]:
                stmt = select(table.c.created_at).where(
                    table.c.tenant_id == tenant.id,
                    table.c.created_at < now,  # not today's
                )
                rows = (await conn.execute(stmt)).scalars().all()
                return sorted(round((now - at) / DAY_MS) for at in rows)

            # short: 1 day of events, 2 of deliveries; long: 60 days of events, the setting's
            # 30 of deliveries; plain: 30 of both
            assert await ages(events, short) == [] and await ages(deliveries, short) == []
            assert await ages(events, long_) == [3, 40] and await ages(deliveries, long_) == [3]
            assert await ages(events, plain) == [3] and await ages(deliveries, plain) == [3]
        assert purged["events"] == 3 and purged["deliveries"] == 4
        assert not any((await purge_once(svc.ctx)).values())


async def _dispatched(svc: Any) -> None:
    """Move every tenant's dispatch cursor to its log head, as the dispatcher does once it has
    made the deliveries of every event."""
    async with svc.ctx.db.transaction() as tx:
        for tenant_id, head in (await tx.execute(select(event_heads))).all():
            await webhook_store.ensure_cursor(tx, tenant_id)
            old = await webhook_store.cursor_position(tx, tenant_id)
            assert await webhook_store.advance_cursor(tx, tenant_id, old, head)


async def test_an_event_a_delivery_still_needs_outlives_its_retention(
    tmp_path: Path, database_url: str
):
    """However short a tenant's retention, the purge never takes an event a pending delivery
    has yet to send, nor one the dispatcher has not reached: that would fail the delivery
    (`event_missing`) or never create it. Once delivered, the event goes at the next sweep."""
    clock = FrozenClock()
    # no dispatcher here: the test moves the cursors itself
    settings = make_settings(tmp_path, database_url, retention_days=30, run_workers=False)
    async with running_service(settings, clock) as svc:
        short, plain = await svc.tenant("short"), await svc.tenant()
        now = clock.now_ms()
        old_ms = now - 40 * DAY_MS
        async with svc.ctx.db.transaction() as tx:
            await plans.write_limits(
                tx, svc.ctx.db.dialect, short.id, {"event_retention_days": 1}, now
            )
            needed = {}
            for tenant in (short, plain):
                waiting, _done = [
                    await append_event(
                        tx, tenant_id=tenant.id, event_type="incident.created", data={}, now_ms=at
                    )
                    for at in (old_ms, old_ms)
                ]
                needed[tenant.id] = waiting.id
                await tx.execute(
                    deliveries.insert().values(
                        id=f"msg_wait_{tenant.id}",
                        tenant_id=tenant.id,
                        subscription_id="sub_x",
                        event_id=waiting.id,
                        event_type="incident.created",
                        status="pending",
                        attempts=3,
                        next_attempt_at=now + 3_600_000,
                        created_at=old_ms,
                        updated_at=old_ms,
                    )
                )
        await _dispatched(svc)
        # an old event the dispatcher has not reached yet (it is behind, or stopped)
        async with svc.ctx.db.transaction() as tx:
            late = await append_event(
                tx, tenant_id=short.id, event_type="incident.created", data={}, now_ms=old_ms
            )
        purged = await purge_once(svc.ctx)
        async with svc.ctx.db.read() as conn:
            left = set((await conn.execute(select(events.c.id))).scalars().all())
        for tenant in (short, plain):
            assert needed[tenant.id] in left, "the event of a pending delivery was purged"
        assert late.id in left, "an event not yet dispatched was purged"
        assert purged["events"] == 2  # the delivered one of each tenant
        # delivered at last: its event is an ordinary old event again
        async with svc.ctx.db.transaction() as tx:
            await tx.execute(
                deliveries.update()
                .where(deliveries.c.id == f"msg_wait_{short.id}")
                .values(status="succeeded")
            )
        purged = await purge_once(svc.ctx)
        async with svc.ctx.db.read() as conn:
            left = set((await conn.execute(select(events.c.id))).scalars().all())
        assert needed[short.id] not in left and needed[plain.id] in left


async def test_many_tenants_with_their_own_retention(tmp_path: Path, database_url: str):
    """Tens of thousands of tenants with a retention of their own (more than a statement may
    carry parameters, 32,767 on PostgreSQL) still get a working purge, for them and for
    everyone else."""
    clock = FrozenClock()
    settings = make_settings(tmp_path, database_url, retention_days=30, run_workers=False)
    async with running_service(settings, clock) as svc:
        own, plain = await svc.tenant("own"), await svc.tenant()
        now = clock.now_ms()
        async with svc.ctx.db.transaction() as tx:
            await tx.execute(
                tenant_limits.insert(),
                [
                    {
                        "tenant_id": f"ten_many{i:06d}",
                        "event_retention_days": 5 + i % 3,
                        "delivery_retention_days": 5,
                        "updated_at": now,
                    }
                    for i in range(33_000)
                ],
            )
            await plans.write_limits(
                tx, svc.ctx.db.dialect, own.id, {"event_retention_days": 5}, now
            )
            old = {
                tenant.id: await append_event(
                    tx,
                    tenant_id=tenant.id,
                    event_type="incident.created",
                    data={},
                    now_ms=now - 10 * DAY_MS,
                )
                for tenant in (own, plain)
            }
        await _dispatched(svc)
        purged = await purge_once(svc.ctx)
        assert purged["events"] == 1  # own's: 10 days old, past its 5; plain keeps 30
        async with svc.ctx.db.read() as conn:
            left = set((await conn.execute(select(events.c.id))).scalars().all())
        assert old[own.id].id not in left and old[plain.id].id in left
