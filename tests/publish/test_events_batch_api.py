"""POST /v1/events/batch on both backends: one transaction, in order, all or nothing; the single
publish's checks per event, refusals naming the event; effects per event; Idempotency-Key."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from causeflow.event.tables import events
from causeflow_sdk.models import sample_data
from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration

BATCH = "/v1/events/batch"


def created(title: str) -> dict[str, Any]:
    return {"event": "incident.created", "data": sample_data("incident.created", title=title)}


async def post_batch(service: Service, headers: dict, items: list[dict], **extra: str):
    return await service.client.post(BATCH, headers={**headers, **extra}, json={"events": items})


async def log_count(service: Service, tenant: Tenant) -> int:
    async with service.ctx.db.read() as conn:
        stmt = select(func.count()).select_from(events).where(events.c.tenant_id == tenant.id)
        return int((await conn.execute(stmt)).scalar_one())


async def log_positions(service: Service, tenant: Tenant, ids: list[str]) -> list[int]:
    async with service.ctx.db.read() as conn:
        rows = await conn.execute(
            select(events.c.id, events.c.position).where(events.c.id.in_(ids))
        )
        by_id = {r[0]: r[1] for r in rows}
    return [by_id[i] for i in ids]


async def producer_key(service: Service, tenant: Tenant) -> dict[str, str]:
    resp = await service.client.post(
        "/v1/api-keys",
        headers=tenant.admin_headers,
        json={"name": "engine", "scopes": ["events:publish"]},
    )
    assert resp.status_code == 201, resp.text
    return {"X-API-Key": resp.json()["key"]}


async def open_incident(service: Service, tenant: Tenant) -> str:
    resp = await service.client.post(
        "/v1/incidents",
        headers=tenant.admin_headers,
        json={"title": "Checkout down", "severity": "high"},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def test_a_batch_is_stored_in_order_at_consecutive_positions(
    service: Service, tenant: Tenant
):
    await post_batch(service, tenant.key_headers, [created("before")])
    items = [created(f"t{i}") for i in range(100)]
    items[7]["test"] = True
    resp = await post_batch(service, tenant.key_headers, items)
    assert resp.status_code == 200, resp.text
    results = resp.json()["items"]
    assert [r["index"] for r in results] == list(range(100))
    assert {r["status"] for r in results} == {201}
    assert [r["event"]["data"]["title"] for r in results] == [f"t{i}" for i in range(100)]
    assert results[7]["event"]["test"] is True and "test" not in results[8]["event"]
    ids = [r["event"]["id"] for r in results]
    positions = await log_positions(service, tenant, ids)
    assert positions == list(range(positions[0], positions[0] + 100))
    # the log reads them back in that order, the envelopes byte for byte as answered
    listed = await service.client.get(
        "/v1/events", headers=tenant.admin_headers, params={"limit": "100", "order": "newest"}
    )
    assert [e["id"] for e in reversed(listed.json()["items"])] == ids


async def test_a_batch_is_one_transaction(service: Service, tenant: Tenant):
    commits: list[int] = []
    service.ctx.db.commit_listeners.append(lambda appended: commits.append(len(appended)))
    resp = await post_batch(service, tenant.key_headers, [created(f"t{i}") for i in range(30)])
    assert resp.status_code == 200, resp.text
    assert commits == [30]


@pytest.mark.parametrize(
    ("items", "path"),
    [
        ([], "events"),
        ([created(f"t{i}") for i in range(101)], "events"),
        ([created("a"), {"data": {}}], "events.1.event"),
        ([created("a"), {**created("b"), "extra": 1}], "events.1.extra"),
    ],
    ids=["empty", "101", "missing-type", "unknown-field"],
)
async def test_malformed_batches_are_422_with_their_path(
    service: Service, tenant: Tenant, items: list[dict], path: str
):
    before = await log_count(service, tenant)
    resp = await post_batch(service, tenant.key_headers, items)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "validation_error"
    assert path in [e["path"] for e in resp.json()["details"]["errors"]]
    assert await log_count(service, tenant) == before


async def test_one_invalid_event_refuses_the_batch_and_nothing_is_written(
    service: Service, tenant: Tenant
):
    before = await log_count(service, tenant)
    bad_data = created("b")
    bad_data["data"]["severity"] = "apocalyptic"
    items = [created("a"), bad_data, {"event": "incident.exploded", "data": {}}, created("d")]
    resp = await post_batch(service, tenant.key_headers, items)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "validation_error"
    paths = [e["path"] for e in body["details"]["errors"]]
    assert paths == ["events.1.data.severity", "events.2.event"]
    assert await log_count(service, tenant) == before


async def test_a_refusal_in_the_transaction_rolls_back_the_whole_batch(
    service: Service, tenant: Tenant
):
    """Reference checks run in the transaction: the third event names no incident of the
    tenant, so the first two (and the incident move of the first) are rolled back."""
    incident_id = await open_incident(service, tenant)
    engine = await producer_key(service, tenant)
    before = await log_count(service, tenant)

    def progress(incident: str) -> dict[str, Any]:
        data = sample_data("investigation.progress", incidentId=incident)
        return {"event": "investigation.progress", "data": data}

    items = [
        progress(incident_id),
        progress(incident_id),
        progress("inc_01HZZZZZZZZZZZZZZZZZZZZZZZ"),
    ]
    resp = await post_batch(service, engine, items)
    assert resp.status_code == 404, resp.text
    body = resp.json()
    assert body["error"] == "incident_not_found"
    assert body["details"]["index"] == 2 and body["message"].startswith("events.2: ")
    assert await log_count(service, tenant) == before
    incident = await service.client.get(
        f"/v1/incidents/{incident_id}", headers=tenant.admin_headers
    )
    assert incident.json()["status"] == "open"


async def test_effects_run_for_each_event_in_order(service: Service, tenant: Tenant):
    first, second = await open_incident(service, tenant), await open_incident(service, tenant)
    engine = await producer_key(service, tenant)
    items = [
        {
            "event": "investigation.progress",
            "data": sample_data("investigation.progress", incidentId=i),
        }
        for i in (first, second)
    ]
    resp = await post_batch(service, engine, items)
    assert resp.status_code == 200, resp.text
    for incident_id in (first, second):
        got = await service.client.get(f"/v1/incidents/{incident_id}", headers=tenant.admin_headers)
        assert got.json()["status"] == "investigating"
    listed = await service.client.get(
        "/v1/events",
        headers=tenant.admin_headers,
        params={"event": "investigation.progress,incident.status_changed", "limit": "100"},
    )
    kinds = [(e["event"], e["data"]["incidentId"]) for e in listed.json()["items"]]
    # each move follows the event that caused it
    assert kinds == [
        ("investigation.progress", first),
        ("incident.status_changed", first),
        ("investigation.progress", second),
        ("incident.status_changed", second),
    ]


async def test_who_may_publish_is_checked_per_event(service: Service, tenant: Tenant):
    engine = await producer_key(service, tenant)
    before = await log_count(service, tenant)
    # a type a resource owns, for a producer key: 403 naming the event
    resp = await post_batch(service, engine, [created("a"), created("b")])
    assert resp.status_code == 403 and resp.json()["error"] == "forbidden"
    assert resp.json()["details"] == {"index": 0}
    # a member JWT and an ingest key may not publish at all
    member = service.token(tenant, "member")
    assert (await post_batch(service, member, [created("a")])).status_code == 403
    ingest = {"X-API-Key": tenant.ingest_key}
    assert (await post_batch(service, ingest, [created("a")])).status_code == 403
    assert (await post_batch(service, {}, [created("a")])).status_code == 401
    assert await log_count(service, tenant) == before


async def test_a_retried_batch_replays_its_first_answer(service: Service, tenant: Tenant):
    items = [created("a"), created("b")]
    key = {"Idempotency-Key": "batch-1"}
    before = await log_count(service, tenant)
    first = await post_batch(service, tenant.key_headers, items, **key)
    again = await post_batch(service, tenant.key_headers, items, **key)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert await log_count(service, tenant) == before + 2
    # another credential of the tenant with the same key runs its own batch
    other = await post_batch(service, tenant.admin_headers, items, **key)
    assert other.status_code == 200 and "Idempotent-Replayed" not in other.headers
    assert other.json()["items"][0]["event"]["id"] != first.json()["items"][0]["event"]["id"]
    assert await log_count(service, tenant) == before + 4
    # the same key with another batch: 422 idempotency_key_reused
    reused = await post_batch(service, tenant.key_headers, [created("c")], **key)
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"


async def test_batches_of_two_tenants_stay_apart(
    service: Service, tenant: Tenant, other_tenant: Tenant
):
    before = (await log_count(service, tenant), await log_count(service, other_tenant))
    one = await post_batch(service, tenant.key_headers, [created("a"), created("b")])
    two = await post_batch(service, other_tenant.key_headers, [created("c")])
    assert {e["event"]["tenantId"] for e in one.json()["items"]} == {tenant.id}
    assert two.json()["items"][0]["event"]["tenantId"] == other_tenant.id
    after = (await log_count(service, tenant), await log_count(service, other_tenant))
    assert after == (before[0] + 2, before[1] + 1)
