"""Changing a subscription while events wait to be dispatched, on both backends.

An event is matched by the subscription's rules (types, filter, enabled) in force when it was
committed, however late the dispatcher reaches it; a new URL or new headers apply to every
attempt made after the change, pending deliveries included; nothing is created for a
subscription once its delete has committed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from causeflow.event.log import append_event, page_after
from causeflow.jsonutil import loads
from causeflow.webhook import queue
from causeflow.webhook.dispatcher import Dispatcher, plan_deliveries, start_dispatcher
from causeflow.webhook.engine import start_delivery
from causeflow.webhook.repository import read_cursor
from causeflow.webhook.service import delivery_row
from causeflow.webhook.subscriptions import subscription_cache
from causeflow.webhook.tables import deliveries, subscriptions
from causeflow_sdk.models import sample_data
from tests.support.inproc import Service, Tenant
from tests.support.receiver import Receiver
from tests.support.webhook import (
    SUBS,
    append,
    commit_batch,
    create_sub,
    delivery_rows,
    dispatch_pending,
)

pytestmark = pytest.mark.integration


async def patch(service: Service, tenant: Tenant, sub_id: str, **body: Any) -> dict[str, Any]:
    resp = await service.client.patch(f"{SUBS}/{sub_id}", headers=tenant.admin_headers, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def publish(service: Service, tenant: Tenant, event_type: str, **data: Any) -> str:
    resp = await service.client.post(
        "/v1/events",
        headers=tenant.admin_headers,
        json={"event": event_type, "data": sample_data(event_type, **data)},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def delivered(service: Service, tenant: Tenant, sub_id: str) -> list[tuple[str, str]]:
    rows = await delivery_rows(service, tenant, subscription_id=sub_id)
    return [(r.event_id, r.status) for r in rows]


async def stored_row(service: Service, sub_id: str) -> Any:
    async with service.ctx.db.read() as conn:
        stmt = select(subscriptions).where(subscriptions.c.id == sub_id)
        return (await conn.execute(stmt)).one()


@asynccontextmanager
async def delivering(service: Service) -> AsyncIterator[None]:
    """The dispatcher and a delivery engine of this process, started late on purpose."""
    stop_engine = await start_delivery(service.ctx)
    stop_dispatcher = await start_dispatcher(service.ctx)
    try:
        yield
    finally:
        await stop_dispatcher()
        await stop_engine()


async def test_a_new_url_receives_every_event_published_before_the_change(
    service: Service, tenant: Tenant
) -> None:
    async with Receiver() as receiver:
        sub = await create_sub(
            service, tenant, url=receiver.url_for("/old"), events=["incident.created"]
        )
        published = [await publish(service, tenant, "incident.created") for _ in range(6)]
        await patch(
            service, tenant, sub["id"], url=receiver.url_for("/new"), headers={"X-Team": "blue"}
        )
        async with delivering(service):
            got = await receiver.wait_for(6, path="/new")
            # every delivery has ended (each after its request): nothing else is on its way
            async with asyncio.timeout(30):
                while {s for _, s in await delivered(service, tenant, sub["id"])} != {"succeeded"}:
                    await asyncio.sleep(0.02)
    assert sorted(r.json()["id"] for r in got) == sorted(published)
    assert {r.headers["X-Team"] for r in got} == {"blue"}
    assert receiver.requests_for("/old") == []
    assert len(receiver.requests) == 6


async def test_events_keep_the_types_and_filter_in_force_when_they_were_committed(
    service: Service, tenant: Tenant
) -> None:
    sub = await create_sub(
        service, tenant, events=["incident.created"], filter={"severity": "critical"}
    )
    e1 = await publish(service, tenant, "incident.created", severity="critical")
    await publish(service, tenant, "incident.created", severity="low")
    await publish(service, tenant, "remediation.proposed")
    await patch(service, tenant, sub["id"], events=["remediation.proposed"], filter=None)
    await publish(service, tenant, "incident.created", severity="critical")
    e5 = await publish(service, tenant, "remediation.proposed", requiresApproval=True)
    await patch(service, tenant, sub["id"], filter={"requiresApproval": False})
    await publish(service, tenant, "remediation.proposed", requiresApproval=True)
    e7 = await publish(service, tenant, "remediation.proposed", requiresApproval=False)
    # a change of the URL alone is no change of the rules
    await patch(service, tenant, sub["id"], url="http://127.0.0.1:9/elsewhere")
    e8 = await publish(service, tenant, "remediation.proposed", requiresApproval=False)
    await dispatch_pending(service.ctx)
    assert await delivered(service, tenant, sub["id"]) == [(e, "pending") for e in (e1, e5, e7, e8)]


async def test_enabled_applies_from_its_commit(service: Service, tenant: Tenant) -> None:
    toggled = await create_sub(service, tenant, events=["incident.created"])
    off = await create_sub(service, tenant, events=["incident.created"])
    before = await publish(service, tenant, "incident.created")
    await patch(service, tenant, toggled["id"], enabled=False)
    await patch(service, tenant, off["id"], enabled=False)
    during = await publish(service, tenant, "incident.created")
    await patch(service, tenant, toggled["id"], enabled=True)
    after = await publish(service, tenant, "incident.created")
    await dispatch_pending(service.ctx)
    # committed while disabled: recorded as not sent, even though it is enabled again now
    assert await delivered(service, tenant, toggled["id"]) == [
        (before, "pending"),
        (during, "failed"),
        (after, "pending"),
    ]
    # committed while enabled, but it is disabled now: not sent either
    assert await delivered(service, tenant, off["id"]) == [
        (e, "failed") for e in (before, during, after)
    ]
    failed = await delivery_rows(service, tenant, status="failed")
    assert {r.last_error for r in failed} == {"endpoint_disabled"}
    assert {r.attempts for r in failed} == {0}


async def test_the_history_holds_only_what_undispatched_events_need(
    service: Service, tenant: Tenant
) -> None:
    sub = await create_sub(service, tenant, events=["incident.created"])
    for types in (["remediation.proposed"], ["approval.requested"], ["incident.created"]):
        await publish(service, tenant, "incident.created")
        await patch(service, tenant, sub["id"], events=types)
    history = loads((await stored_row(service, sub["id"])).rules_history)
    assert [h["events"] for h in history] == [
        ["incident.created"],
        ["remediation.proposed"],
        ["approval.requested"],
    ]
    # a change with no event since the last one replaces the current rules outright
    await patch(service, tenant, sub["id"], filter={"severity": "low"})
    assert len(loads((await stored_row(service, sub["id"])).rules_history)) == 3
    await dispatch_pending(service.ctx)
    await patch(service, tenant, sub["id"], events=["*"])
    row = await stored_row(service, sub["id"])
    assert row.rules_history is None
    assert [e for e, _ in await delivered(service, tenant, sub["id"])] != []


async def test_a_batch_read_before_a_delete_cannot_commit_after_it(
    service: Service, tenant: Tenant
) -> None:
    ctx = service.ctx
    sub = await create_sub(service, tenant, events=["incident.created"])
    event = await append(service, tenant)
    # a dispatcher reads its batch ...
    async with ctx.db.transaction() as tx:
        stored = await read_cursor(tx, tenant.id)
        _head, subs = await subscription_cache(ctx).dispatch_set(tx, tenant.id)
        result = await page_after(tx, tenant.id, 0, event.position, 10)
        events = list(result)
    rows = plan_deliveries(tenant.id, events, subs, ctx.clock.now_ms())
    assert [r["subscription_id"] for r in rows] == [sub["id"]]
    # ... the subscription is deleted meanwhile ...
    resp = await service.client.delete(f"{SUBS}/{sub['id']}", headers=tenant.admin_headers)
    assert resp.status_code == 204
    # ... and its commit is refused, so no delivery of the deleted subscription appears
    cursor, generation = stored or (0, 0)
    args = (ctx, tenant.id, stored is None, cursor, event.position, rows, generation)
    assert await commit_batch(*args) is False
    assert await delivery_rows(service, tenant) == []
    assert await dispatch_pending(ctx) == 0
    assert await delivery_rows(service, tenant) == []


async def test_a_delete_ends_the_leases_of_pending_deliveries(
    service: Service, tenant: Tenant
) -> None:
    """An attempt under way at the delete may still arrive, but its outcome cannot bring the
    delivery back to `pending` (no retry after the delete)."""
    ctx = service.ctx
    sub = await create_sub(service, tenant, events=["incident.created"])
    event = await append(service, tenant)
    now = ctx.clock.now_ms()
    row = delivery_row(
        tenant_id=tenant.id,
        subscription_id=sub["id"],
        event_id=event.id,
        event_type=event.type,
        enabled=True,
        now_ms=now,
    )
    row.update(lease_owner="w1", lease_until=now + 60_000)
    async with ctx.db.transaction() as tx:
        await tx.insert_many(deliveries, [row])
    resp = await service.client.delete(f"{SUBS}/{sub['id']}", headers=tenant.admin_headers)
    assert resp.status_code == 204
    outcome = queue.Outcome(
        delivery_id=row["id"],
        tenant_id=tenant.id,
        subscription_id=sub["id"],
        event_id=event.id,
        status="pending",
        now_ms=now + 5,
        attempted=True,
        status_code=500,
        last_error="HTTP 500",
        next_attempt_at=now + 50,
        attempts=1,
    )
    await queue.record(ctx.db, owner="w1", now_ms=now + 5, outcomes=[outcome], disable_after_ms=1)
    (stored,) = await delivery_rows(service, tenant)
    assert (stored.status, stored.lease_owner, stored.next_attempt_at) == ("cancelled", None, None)


async def test_an_automatic_disable_applies_from_its_own_position(
    service: Service, tenant: Tenant
) -> None:
    """A 410 disables the subscription at a log position, like a PATCH: an event committed
    before it, still undispatched when the subscription is enabled again, is sent."""
    ctx = service.ctx
    sub = await create_sub(service, tenant, events=["incident.created"])
    before = await append(service, tenant)
    now = ctx.clock.now_ms()
    held = delivery_row(
        tenant_id=tenant.id,
        subscription_id=sub["id"],
        event_id="evt_test",
        event_type="incident.created",
        enabled=True,
        now_ms=now,
        payload="{}",
    )
    held.update(lease_owner="w1", lease_until=now + 60_000)
    async with ctx.db.transaction() as tx:
        await tx.insert_many(deliveries, [held])
    gone = queue.Outcome(
        delivery_id=held["id"],
        tenant_id=tenant.id,
        subscription_id=sub["id"],
        event_id="evt_test",
        status="failed",
        now_ms=now,
        attempted=True,
        status_code=410,
        effect=queue.GONE,
        attempts=1,
        url=sub["url"],
    )
    recorded = await queue.record(
        ctx.db, owner="w1", now_ms=now, outcomes=[gone], disable_after_ms=1
    )
    assert recorded.disabled == [sub["id"]]
    subscription_cache(ctx).invalidate(sub["id"], tenant.id)
    during = await append(service, tenant)
    await patch(service, tenant, sub["id"], enabled=True)
    after = await append(service, tenant)
    await dispatch_pending(ctx)
    logged = [
        (r.event_id, r.status)
        for r in await delivery_rows(service, tenant, subscription_id=sub["id"])
        if r.payload is None
    ]
    assert logged == [(before.id, "pending"), (during.id, "failed"), (after.id, "pending")]


async def test_concurrent_publishers_dispatchers_and_changes_match_by_commit_position(
    service: Service, tenant: Tenant
) -> None:
    """Two dispatchers, several publishers and a stream of rule changes at once: every event
    gets a delivery exactly when the rules in force at its position match it."""
    ctx = service.ctx
    sub = await create_sub(service, tenant, events=["incident.created"])
    versions: list[tuple[int, frozenset[str], str | None]] = [
        (
            (await stored_row(service, sub["id"])).from_position,
            frozenset({"incident.created"}),
            None,
        )
    ]
    first, second = Dispatcher(ctx, batch_size=5), Dispatcher(ctx, batch_size=9)
    await first.start()
    await second.start()
    published: list[Any] = []
    done = False

    async def publisher(n: int) -> None:
        rng = random.Random(n)
        while not done:
            event_type = rng.choice(["incident.created", "remediation.proposed"])
            data = sample_data(event_type)
            if event_type == "incident.created":
                data["severity"] = rng.choice(["critical", "low"])
            async with ctx.db.transaction() as tx:
                published.append(
                    await append_event(
                        tx,
                        tenant_id=tenant.id,
                        event_type=event_type,
                        data=data,
                        now_ms=ctx.clock.now_ms(),
                    )
                )
            await asyncio.sleep(0.001 * rng.random())

    choices = [
        (["incident.created"], None),
        (["remediation.proposed"], None),
        (["*"], "critical"),
        (["incident.created", "remediation.proposed"], "low"),
    ]
    tasks = [asyncio.create_task(publisher(n)) for n in range(4)]
    try:
        rng = random.Random(7)
        for _ in range(12):
            await asyncio.sleep(0.01)
            types, severity = rng.choice(choices)
            await patch(
                service,
                tenant,
                sub["id"],
                events=types,
                filter={"severity": severity} if severity else None,
            )
            position = (await stored_row(service, sub["id"])).from_position
            versions.append((position, frozenset(types), severity))
    finally:
        done = True
        await asyncio.gather(*tasks)
        await first.stop()
        await second.stop()
    await dispatch_pending(ctx)

    def wanted(ev: Any) -> bool:
        in_force = [v for v in versions if v[0] < ev.position]
        if not in_force:
            return False
        _start, types, severity = in_force[-1]
        if "*" not in types and ev.type not in types:
            return False
        data = orjson.loads(ev.envelope)["data"]
        return severity is None or data.get("severity") == severity

    rows = await delivery_rows(service, tenant, subscription_id=sub["id"])
    got = [r.event_id for r in rows]
    assert len(got) == len(set(got)), "an event was delivered twice"
    assert set(got) == {ev.id for ev in published if wanted(ev)}
    assert len(versions) == 13 and len(published) > 40
