"""The dispatcher on both backends: which subscription gets which event, exactly once, across
concurrent publishers, competing dispatchers and restarts."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from causeflow.event.log import append_event
from causeflow.webhook.dispatcher import Dispatcher, dispatch_batch
from causeflow.webhook.service import delivery_row
from causeflow.webhook.subscriptions import subscription_cache
from causeflow.webhook.tables import dispatch_cursors
from causeflow_sdk.models import sample_data
from tests.support.inproc import Service, Tenant, make_settings, running_service
from tests.support.webhook import (
    SUBS,
    append,
    commit_batch,
    create_sub,
    delivery_rows,
    dispatch_pending,
)

pytestmark = pytest.mark.integration


async def _cursor(service: Service, tenant: Tenant) -> int | None:
    async with service.ctx.db.read() as conn:
        stmt = select(dispatch_cursors.c.position).where(dispatch_cursors.c.tenant_id == tenant.id)
        return (await conn.execute(stmt)).scalar()


async def test_a_subscription_gets_exactly_the_events_after_it(service: Service, tenant: Tenant):
    early = [await append(service, tenant) for _ in range(3)]
    sub = await create_sub(service, tenant)
    late = [await append(service, tenant) for _ in range(4)]
    assert await dispatch_pending(service.ctx) == 4
    assert await dispatch_pending(service.ctx) == 0
    rows = await delivery_rows(service, tenant, subscription_id=sub["id"])
    assert [r.event_id for r in rows] == [e.id for e in late]
    assert not {r.event_id for r in rows} & {e.id for e in early}
    assert all(r.status == "pending" and r.attempts == 0 and r.next_attempt_at for r in rows)
    assert all(r.event_type == "incident.created" and r.payload is None for r in rows)
    assert await _cursor(service, tenant) == late[-1].position


async def test_types_star_and_data_filters(service: Service, tenant: Tenant):
    star = await create_sub(service, tenant, events=["*"])
    typed = await create_sub(service, tenant, events=["incident.created", "remediation.proposed"])
    listed = await create_sub(
        service, tenant, events=["incident.created"], filter={"severity": ["critical", "high"]}
    )
    scalar = await create_sub(service, tenant, events=["*"], filter={"source": "grafana"})
    both = await create_sub(
        service,
        tenant,
        events=["incident.created"],
        filter={"severity": "critical", "source": ["datadog", "grafana"]},
    )
    e1 = await append(service, tenant, severity="critical", source="grafana")
    e2 = await append(service, tenant, severity="high", source="datadog")
    e3 = await append(service, tenant, severity="low", source="grafana")
    e4 = await append(service, tenant, "remediation.proposed")
    e5 = await append(service, tenant, "approval.requested")
    await dispatch_pending(service.ctx)

    async def got(sub: dict) -> list[str]:
        return [r.event_id for r in await delivery_rows(service, tenant, subscription_id=sub["id"])]

    assert await got(star) == [e1.id, e2.id, e3.id, e4.id, e5.id]
    assert await got(typed) == [e1.id, e2.id, e3.id, e4.id]
    assert await got(listed) == [e1.id, e2.id]
    assert await got(scalar) == [e1.id, e3.id]  # events without a `source` field never match
    assert await got(both) == [e1.id]


async def test_disabled_subscription_records_failed_endpoint_disabled(
    service: Service, tenant: Tenant
):
    sub = await create_sub(service, tenant, enabled=False)
    event = await append(service, tenant)
    await dispatch_pending(service.ctx)
    (row,) = await delivery_rows(service, tenant, subscription_id=sub["id"])
    assert row.event_id == event.id
    assert row.status == "failed" and row.last_error == "endpoint_disabled"
    assert row.next_attempt_at is None
    # re-enabled: new events are pending again, and the failed one is recoverable
    await service.client.patch(
        f"{SUBS}/{sub['id']}", headers=tenant.admin_headers, json={"enabled": True}
    )
    await append(service, tenant)
    await dispatch_pending(service.ctx)
    statuses = [r.status for r in await delivery_rows(service, tenant, subscription_id=sub["id"])]
    assert statuses == ["failed", "pending"]


async def test_operational_events_skip_the_subscription_they_are_about(
    service: Service, tenant: Tenant
):
    about = await create_sub(service, tenant, events=["*"])
    watcher = await create_sub(service, tenant, events=["webhook.subscription_disabled"])
    event = await append(
        service, tenant, "webhook.subscription_disabled", subscriptionId=about["id"]
    )
    other = await append(
        service, tenant, "webhook.subscription_disabled", subscriptionId=watcher["id"]
    )
    await dispatch_pending(service.ctx)
    assert [
        r.event_id for r in await delivery_rows(service, tenant, subscription_id=about["id"])
    ] == [other.id]
    assert [
        r.event_id for r in await delivery_rows(service, tenant, subscription_id=watcher["id"])
    ] == [event.id]


async def test_patch_of_the_rules_applies_to_later_events(service: Service, tenant: Tenant):
    sub = await create_sub(service, tenant, events=["incident.created"])
    first = await append(service, tenant)
    await dispatch_pending(service.ctx)
    resp = await service.client.patch(
        f"{SUBS}/{sub['id']}",
        headers=tenant.admin_headers,
        json={"events": ["remediation.proposed"]},
    )
    assert resp.status_code == 200
    await append(service, tenant)
    proposed = await append(service, tenant, "remediation.proposed")
    await dispatch_pending(service.ctx)
    rows = await delivery_rows(service, tenant, subscription_id=sub["id"])
    assert [r.event_id for r in rows] == [first.id, proposed.id]


async def test_tenants_are_isolated_and_idle_tenants_just_advance(
    service: Service, tenant: Tenant, other_tenant: Tenant
):
    sub = await create_sub(service, tenant)
    mine = await append(service, tenant)
    for _ in range(3):
        await append(service, other_tenant)
    await dispatch_pending(service.ctx)
    assert [r.event_id for r in await delivery_rows(service, tenant)] == [mine.id]
    assert await delivery_rows(service, other_tenant) == []
    async with service.ctx.db.read() as conn:
        from causeflow.event.log import head_position

        assert await _cursor(service, other_tenant) == await head_position(conn, other_tenant.id)
    assert sub["id"]


async def test_wakeup_hook_runs_after_a_batch_commits(service: Service, tenant: Tenant):
    calls: list[int] = []

    async def count_pending() -> None:
        calls.append(len(await delivery_rows(service, tenant, status="pending")))

    tasks: list[asyncio.Task[None]] = []
    service.ctx.delivery_wakeup = lambda: tasks.append(asyncio.ensure_future(count_pending()))
    await create_sub(service, tenant)
    await append(service, tenant)
    await dispatch_pending(service.ctx)
    await asyncio.gather(*tasks)
    assert calls == [1]  # called once, and the rows were already committed


async def test_concurrent_publishers_and_two_dispatchers_deliver_each_event_once(
    service: Service, tenant: Tenant
):
    ctx = service.ctx
    subs = [
        await create_sub(service, tenant, events=["*"]),
        await create_sub(service, tenant, events=["incident.created"]),
        await create_sub(service, tenant, events=["*"], filter={"severity": "critical"}),
    ]
    first, second = Dispatcher(ctx, batch_size=7), Dispatcher(ctx, batch_size=11)
    await first.start()
    await second.start()
    published: list = []

    async def publisher(n: int) -> None:
        rng = random.Random(n)
        for i in range(25):
            event_type = rng.choice(["incident.created", "remediation.proposed"])
            data = sample_data(event_type)
            if event_type == "incident.created":
                data["severity"] = rng.choice(["critical", "low"])
            async with ctx.db.transaction() as tx:
                for _ in range(1 + i % 2):  # some transactions append two events
                    published.append(
                        await append_event(
                            tx,
                            tenant_id=tenant.id,
                            event_type=event_type,
                            data=data,
                            now_ms=ctx.clock.now_ms(),
                        )
                    )
            await asyncio.sleep(0)

    try:
        await asyncio.gather(*(publisher(n) for n in range(6)))
        await dispatch_pending(ctx)  # a third dispatcher racing the two running ones
    finally:
        await first.stop()
        await second.stop()
    await dispatch_pending(ctx)

    rows = await delivery_rows(service, tenant)
    pairs = Counter((r.subscription_id, r.event_id) for r in rows)
    assert max(pairs.values()) == 1, "an event was delivered twice to one subscription"
    expected = set()
    for ev in published:
        expected.add((subs[0]["id"], ev.id))
        if ev.type == "incident.created":
            expected.add((subs[1]["id"], ev.id))
    critical = {
        ev.id
        for ev in published
        if ev.type == "incident.created" and '"severity":"critical"' in ev.envelope
    }
    expected |= {(subs[2]["id"], eid) for eid in critical}
    assert set(pairs) == expected
    # each subscription's matches are numbered 1..n without gap, in log order
    position = {ev.id: ev.position for ev in published}
    for sub in subs:
        mine = sorted((r for r in rows if r.subscription_id == sub["id"]), key=lambda r: r.sequence)
        assert [r.sequence for r in mine] == list(range(1, len(mine) + 1))
        assert [position[r.event_id] for r in mine] == sorted(position[r.event_id] for r in mine)


async def test_restarting_the_dispatcher_midway_neither_skips_nor_repeats(
    service: Service, tenant: Tenant
):
    ctx = service.ctx
    sub = await create_sub(service, tenant)
    events = []
    async with ctx.db.transaction() as tx:
        for _ in range(120):
            events.append(
                await append_event(
                    tx,
                    tenant_id=tenant.id,
                    event_type="incident.created",
                    data=sample_data("incident.created"),
                    now_ms=ctx.clock.now_ms(),
                )
            )
    # one batch by hand, then dispatchers cancelled right after their k-th batch commits,
    # while they are already reading the next one
    assert (await dispatch_batch(ctx, subscription_cache(ctx), tenant.id, limit=5)).deliveries == 5
    progress = [5]
    for round_ in range(60):
        dispatcher = Dispatcher(ctx, batch_size=3)
        batches = 0
        stopped = asyncio.get_running_loop().create_future()

        def after_batch(k: int = 1 + round_ % 3, d: Dispatcher = dispatcher) -> None:
            nonlocal batches
            batches += 1
            if batches == k and not stopped.done():
                stopped.set_result(asyncio.ensure_future(d.stop(timeout=0)))

        ctx.delivery_wakeup = after_batch
        await dispatcher.start()
        await asyncio.wait_for(await asyncio.wait_for(stopped, 10), 10)
        progress.append(len(await delivery_rows(service, tenant, subscription_id=sub["id"])))
        if progress[-1] == len(events):
            break
    ctx.delivery_wakeup = None
    await dispatch_pending(ctx)
    rows = await delivery_rows(service, tenant, subscription_id=sub["id"])
    assert sorted(r.event_id for r in rows) == sorted(e.id for e in events)
    assert len(progress) > 10, "each dispatcher should have been stopped after a few batches"
    assert progress == sorted(progress)


async def test_the_component_dispatches_on_its_own_in_serve(tmp_path: Path):
    """On SQLite the worker role runs inside serve: a publish is dispatched without help."""
    async with running_service(make_settings(tmp_path, webhook_poll_seconds=30)) as svc:
        assert isinstance(svc.ctx.dispatcher, Dispatcher)
        tenant = await svc.tenant("served")
        sub = await create_sub(svc, tenant)
        resp = await svc.client.post(
            "/v1/events",
            headers=tenant.key_headers,
            json={"event": "incident.created", "data": sample_data("incident.created")},
        )
        event_id = resp.json()["id"]
        for _ in range(200):
            rows = await delivery_rows(svc, tenant, subscription_id=sub["id"])
            if rows:
                break
            await asyncio.sleep(0.01)
        assert [r.event_id for r in rows] == [event_id]


async def test_only_one_of_two_commits_of_the_same_batch_lands(service: Service, tenant: Tenant):
    """The cursor's compare-and-set: a second dispatcher holding the same batch rolls back."""
    sub = await create_sub(service, tenant)
    event = await append(service, tenant)
    rows = [
        delivery_row(
            tenant_id=tenant.id,
            subscription_id=sub["id"],
            event_id=event.id,
            event_type=event.type,
            enabled=True,
            now_ms=service.ctx.clock.now_ms(),
        )
        for _ in range(2)
    ]
    args = (service.ctx, tenant.id, True, 0, event.position)
    assert await commit_batch(*args, [rows[0]]) is True
    assert await commit_batch(*args, [rows[1]]) is False
    assert [r.id for r in await delivery_rows(service, tenant)] == [rows[0]["id"]]
    assert await _cursor(service, tenant) == event.position
    assert await dispatch_pending(service.ctx) == 0
