"""Deliveries stored together (ingest/batch.py) on both backends: one transaction for a burst,
the same outcome as one after another, and a delivery the database refuses fails alone."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import orjson
import pytest
from sqlalchemy import select

from causeflow.event.tables import events
from causeflow.ingest.batch import Delivery
from causeflow.ingest.providers.registry import PROVIDERS
from causeflow.ingest.runtime import inbound_runtime
from tests.support.inbound import alert, count_rows
from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration


def delivery(
    tenant: Tenant, now_ms: int, *alerts: dict, delivery_id: str | None = None
) -> Delivery:
    headers = {"x-webhook-id": delivery_id} if delivery_id else {}
    parsed = PROVIDERS["custom"].parse(headers, orjson.dumps({"alerts": list(alerts)}))
    return Delivery(tenant_id=tenant.id, provider="custom", parsed=parsed, now_ms=now_ms)


async def store_together(service: Service, deliveries: list[Delivery]) -> list:
    """Queue every delivery before the batcher runs: they share one batch."""
    batcher = inbound_runtime(service.ctx).batcher
    before = batcher.batches
    results = await asyncio.gather(*(batcher.submit(d) for d in deliveries), return_exceptions=True)
    return [before, batcher.batches, *results]


def body(stored) -> dict:
    return orjson.loads(stored.body)


async def log_types(service: Service, tenant: Tenant) -> list[str]:
    async with service.ctx.db.read() as conn:
        rows = await conn.execute(
            select(events.c.type).where(events.c.tenant_id == tenant.id).order_by(events.c.position)
        )
        return [r[0] for r in rows if r[0].startswith("incident.")]


async def test_a_burst_is_one_transaction_with_the_sequential_outcome(
    service: Service, tenant: Tenant
):
    now = service.ctx.clock.now_ms()
    before, after, *stored = await store_together(
        service,
        [
            delivery(tenant, now, alert("a")),
            delivery(tenant, now, alert("a"), alert("b")),
            delivery(tenant, now + 1, alert("a", status="resolved")),
            delivery(tenant, now + 2, alert("a"), alert("c", status="resolved")),
            delivery(tenant, now + 3, alert("b")),
        ],
    )
    assert after == before + 1
    got = [[(x["action"], x["incidentId"]) for x in body(s)["alerts"]] for s in stored]
    (created_a, first_a), (attached_a, same_a), (created_b, first_b) = got[0] + got[1]
    assert (created_a, attached_a, created_b) == ("created", "attached", "created")
    assert same_a == first_a
    assert got[2] == [("resolved", first_a)]
    (refired, second_a), (ignored, nothing) = got[3]
    assert (refired, ignored, nothing) == ("created", "ignored", None)
    assert second_a != first_a
    assert got[4] == [("attached", first_b)]
    # the log holds the events in the order of the alerts that caused them
    assert await log_types(service, tenant) == [
        "incident.created",  # a
        "incident.created",  # b
        "incident.status_changed",  # a resolved
        "incident.created",  # a again
    ]
    rows = await count_rows(service)
    assert rows["incidents"] == 3 and rows["alerts"] == 7 and rows["open_fingerprints"] == 2
    resp = await service.client.get(f"/v1/incidents/{first_b}", headers=tenant.admin_headers)
    assert resp.json()["alertCount"] == 2
    resp = await service.client.get(f"/v1/incidents/{first_a}", headers=tenant.admin_headers)
    assert resp.json()["alertCount"] == 3 and resp.json()["status"] == "resolved"


async def test_a_delivery_the_database_refuses_fails_alone(service: Service, tenant: Tenant):
    now = service.ctx.clock.now_ms()
    good = delivery(tenant, now, alert("fine-1"))
    bad = delivery(tenant, now, alert("broken"))
    # A value no driver can bind: the batch's transaction fails at the alert insert.
    bad = replace(
        bad, parsed=replace(bad.parsed, alerts=[replace(bad.parsed.alerts[0], url=object())])
    )
    later = delivery(tenant, now, alert("fine-2"), delivery_id="after-the-bad-one")
    before, after, *stored = await store_together(service, [good, bad, later])
    assert isinstance(stored[1], Exception)
    assert [x["action"] for x in body(stored[0])["alerts"]] == ["created"]
    assert [x["action"] for x in body(stored[2])["alerts"]] == ["created"]
    assert after == before + 2  # the failed batch, then each delivery alone
    rows = await count_rows(service)
    assert rows["alerts"] == 2 and rows["incidents"] == 2 and rows["inbound_deliveries"] == 1
    assert await log_types(service, tenant) == ["incident.created", "incident.created"]


async def test_one_delivery_twice_in_a_batch_is_stored_once(service: Service, tenant: Tenant):
    now = service.ctx.clock.now_ms()
    copies = [delivery(tenant, now, alert("twice"), delivery_id="d-1") for _ in range(3)]
    before, after, *stored = await store_together(service, copies)
    assert after == before + 1
    assert len({s.body for s in stored}) == 1
    assert [s.outcomes for s in stored] == [
        ["created"],
        ["duplicate_delivery"],
        ["duplicate_delivery"],
    ]
    rows = await count_rows(service)
    assert rows["alerts"] == 1 and rows["inbound_deliveries"] == 1


@pytest.mark.parametrize("size", [1, 70])
async def test_batches_are_bounded(service: Service, tenant: Tenant, size: int):
    now = service.ctx.clock.now_ms()
    before, after, *stored = await store_together(
        service, [delivery(tenant, now, alert(f"n-{i}")) for i in range(size)]
    )
    assert all(body(s)["alerts"][0]["action"] == "created" for s in stored)
    assert after - before == (1 if size == 1 else 2)  # at most 64 deliveries per transaction


async def test_a_caller_that_goes_away_does_not_undo_its_delivery(service: Service, tenant: Tenant):
    batcher = inbound_runtime(service.ctx).batcher
    now = service.ctx.clock.now_ms()
    gone = asyncio.create_task(batcher.submit(delivery(tenant, now, alert("left-early"))))
    stays = asyncio.create_task(batcher.submit(delivery(tenant, now, alert("waited"))))
    await asyncio.sleep(0)  # both queued; the batch has not run yet
    gone.cancel()
    assert [x["action"] for x in body(await stays)["alerts"]] == ["created"]
    with pytest.raises(asyncio.CancelledError):
        await gone
    rows = await count_rows(service)
    assert rows["alerts"] == 2 and rows["incidents"] == 2
