"""The delivery search by event type pages newest first through exactly the deliveries of the
types asked for, whichever index serves it: one type, several (a UNION ALL of each type's
range), or a type the tenant lacks; with ties in `created_at`, replays (new deliveries of old
events, so delivery order is not event order), other statuses and another tenant's rows."""

from __future__ import annotations

import random
from typing import Any

import pytest

from causeflow import ids
from causeflow.webhook import repository
from causeflow.webhook.repository import DeliveryQuery
from causeflow.webhook.service import delivery_row
from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration

TYPES = ["incident.created", "incident.resolved", "remediation.proposed", "approval.requested"]
T0 = 1_790_000_000_000


def _rows(rng: random.Random, tenant_id: str, n: int) -> list[dict[str, Any]]:
    rows = []
    events = [(ids.new_id("evt", T0 + i), rng.choice(TYPES[:3])) for i in range(n // 2)]
    for i in range(n):
        event_id, event_type = rng.choice(events)  # an old event's replay as often as not
        created = T0 + rng.randrange(n // 3) * 1000  # many deliveries share a millisecond
        row = delivery_row(
            tenant_id=tenant_id,
            subscription_id=f"sub_{i % 3}",
            event_id=event_id,
            event_type=event_type,
            enabled=False,
            now_ms=created,
        )
        row["id"] = f"msg_{rng.randrange(10**12):012d}_{i:04d}"
        row["status"] = rng.choice(["succeeded", "failed", "cancelled"])
        rows.append(row)
    return rows


async def _pages(service: Service, tenant_id: str, query: DeliveryQuery, limit: int) -> list[str]:
    seen: list[str] = []
    before = None
    while True:
        async with service.ctx.db.read() as conn:
            got = await repository.list_deliveries(
                conn, tenant_id, query, before=before, limit=limit + 1
            )
        seen += [r.id for r in got[:limit]]
        if len(got) <= limit:
            return seen
        last = got[limit - 1]
        before = (last.created_at, last.id)


async def test_type_search_pages_through_exactly_the_types_asked(
    service: Service, tenant: Tenant, other_tenant: Tenant
):
    rng = random.Random(7)
    mine = _rows(rng, tenant.id, 240)
    theirs = _rows(rng, other_tenant.id, 60)
    async with service.ctx.db.transaction() as tx:
        await repository.insert_deliveries(tx, mine + theirs)
    newest_first = sorted(mine, key=lambda r: (r["created_at"], r["id"]), reverse=True)
    asked_for = [
        {"incident.created"},
        {"incident.resolved", "remediation.proposed"},
        set(TYPES[:3]),
        {"approval.requested"},  # none of the tenant's deliveries
        {"approval.requested", "incident.resolved"},
    ]
    for types in asked_for:
        for status in (None, "failed"):
            want = [
                r["id"]
                for r in newest_first
                if r["event_type"] in types and status in (None, r["status"])
            ]
            query = DeliveryQuery(event_types=frozenset(types), status=status)
            for limit in (1, 7, 50):
                got = await _pages(service, tenant.id, query, limit)
                assert got == want, (types, status, limit)


async def test_event_search_pages_through_the_events_deliveries(service: Service, tenant: Tenant):
    """`eventId` (sorted from the event's own index): every delivery of the event, replays
    included, newest first, with a subscription, a type or a status on top."""
    rng = random.Random(11)
    mine = _rows(rng, tenant.id, 200)
    async with service.ctx.db.transaction() as tx:
        await repository.insert_deliveries(tx, mine)
    newest_first = sorted(mine, key=lambda r: (r["created_at"], r["id"]), reverse=True)
    for event_id in sorted({r["event_id"] for r in mine})[:6]:
        for extra in ({}, {"subscription_id": "sub_1"}, {"status": "failed"}):
            want = [
                r["id"]
                for r in newest_first
                if r["event_id"] == event_id
                and r["subscription_id"] == extra.get("subscription_id", r["subscription_id"])
                and r["status"] == extra.get("status", r["status"])
            ]
            query = DeliveryQuery(event_id=event_id, **extra)
            for limit in (1, 2, 50):
                assert await _pages(service, tenant.id, query, limit) == want, (extra, limit)
