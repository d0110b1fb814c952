"""Delivery endpoints of docs/reference.md §5.1 on both backends: test sends, listing, a delivery
with its attempts, retry, recover, replay, and who may do what to whose ids."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from causeflow import ids
from causeflow.webhook.tables import attempts
from causeflow_sdk.models import validate_data
from tests.support.inproc import Service, Tenant
from tests.support.webhook import (
    SUBS,
    append,
    create_sub,
    delivery_rows,
    dispatch_pending,
    error_paths,
    set_delivery,
)

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
DELIVERY_FIELDS = {
    "id",
    "subscriptionId",
    "eventId",
    "eventType",
    "status",
    "attempts",
    "nextAttemptAt",
    "lastStatusCode",
    "lastError",
    "test",
    "sequence",
    "createdAt",
    "updatedAt",
}


def iso(ms: int) -> str:
    from causeflow.clock import ms_to_rfc3339

    return ms_to_rfc3339(ms)


async def test_test_delivery_is_stored_on_the_row_not_in_the_log(service: Service, tenant: Tenant):
    sub = await create_sub(service, tenant, events=["incident.created"])
    other = await create_sub(service, tenant)
    resp = await service.client.post(f"{SUBS}/{sub['id']}/test", headers=tenant.admin_headers)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert set(body) == DELIVERY_FIELDS
    assert body["status"] == "pending" and body["test"] is True
    assert body["sequence"] is None  # a test delivery is no match of the subscription
    assert body["eventType"] == "incident.created" and body["nextAttemptAt"] is not None

    (row,) = await delivery_rows(service, tenant, id=body["id"])
    envelope = orjson.loads(row.payload)
    assert envelope["test"] is True and envelope["id"] == body["eventId"]
    assert envelope["tenantId"] == tenant.id and envelope["event"] == "incident.created"
    validate_data("incident.created", envelope["data"])

    # never in the log, the stream's source, and no other subscription gets it
    log = await service.client.get("/v1/events", headers=tenant.admin_headers)
    assert body["eventId"] not in log.text
    await dispatch_pending(service.ctx)
    assert await delivery_rows(service, tenant, subscription_id=other["id"]) == []

    typed = await service.client.post(
        f"{SUBS}/{sub['id']}/test",
        headers=tenant.admin_headers,
        json={"event": "approval.requested"},
    )
    assert typed.json()["eventType"] == "approval.requested"
    bad = await service.client.post(
        f"{SUBS}/{sub['id']}/test", headers=tenant.admin_headers, json={"event": "nope.nope"}
    )
    assert error_paths(bad) == ["event"]

    await service.client.patch(
        f"{SUBS}/{sub['id']}", headers=tenant.admin_headers, json={"enabled": False}
    )
    off = await service.client.post(f"{SUBS}/{sub['id']}/test", headers=tenant.admin_headers)
    assert off.status_code == 409 and off.json()["error"] == "subscription_disabled"


async def test_deliveries_list_filters_and_pages(service: Service, tenant: Tenant):
    sub = await create_sub(service, tenant)
    for _ in range(3):
        await append(service, tenant)
    await append(service, tenant, "remediation.proposed")
    await append(service, tenant, "approval.requested")
    await dispatch_pending(service.ctx)
    rows = await delivery_rows(service, tenant, subscription_id=sub["id"])
    assert len(rows) == 5
    await set_delivery(service, rows[0].id, status="failed", last_error="http_500")

    url = f"{SUBS}/{sub['id']}/deliveries"
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = (await service.client.get(url, headers=tenant.admin_headers, params=params)).json()
        seen += body["items"]
        cursor = body["cursor"]
        if cursor is None:
            break
    assert [d["id"] for d in seen] == [r.id for r in reversed(rows)]  # newest first
    assert set(seen[0]) == DELIVERY_FIELDS

    failed = await service.client.get(
        url, headers=tenant.admin_headers, params={"status": "failed"}
    )
    assert [d["id"] for d in failed.json()["items"]] == [rows[0].id]
    assert failed.json()["items"][0]["lastError"] == "http_500"
    typed = await service.client.get(
        url,
        headers=tenant.admin_headers,
        params={"event": "remediation.proposed,approval.requested"},
    )
    assert sorted(d["eventType"] for d in typed.json()["items"]) == [
        "approval.requested",
        "remediation.proposed",
    ]
    bad = await service.client.get(url, headers=tenant.admin_headers, params={"status": "lost"})
    assert error_paths(bad) == ["query.status"]


async def test_one_delivery_with_its_attempts(service: Service, tenant: Tenant):
    sub = await create_sub(service, tenant)
    resp = await service.client.post(f"{SUBS}/{sub['id']}/test", headers=tenant.admin_headers)
    msg_id = resp.json()["id"]
    now = service.ctx.clock.now_ms()
    async with service.ctx.db.transaction() as tx:
        await tx.execute(
            attempts.insert(),
            [
                {
                    "id": ids.new_id("att"),
                    "delivery_id": msg_id,
                    "tenant_id": tenant.id,
                    "created_at": now + i,
                    "status_code": code,
                    "latency_ms": 12,
                    "error": err,
                    "response_body": text,
                }
                for i, (code, err, text) in enumerate(
                    [(500, "http_500", "boom"), (200, None, "ok")]
                )
            ],
        )
    await set_delivery(service, msg_id, status="succeeded", attempts=2, last_status_code=200)
    got = await service.client.get(f"/v1/deliveries/{msg_id}", headers=tenant.admin_headers)
    assert got.status_code == 200
    body = got.json()
    assert body["status"] == "succeeded" and body["attempts"] == 2
    log = body["attemptLog"]
    assert [a["statusCode"] for a in log] == [500, 200]
    assert set(log[0]) == {"id", "createdAt", "statusCode", "latencyMs", "error", "responseBody"}
    assert log[0]["id"].startswith("att_") and log[0]["error"] == "http_500"
    assert log[0]["responseBody"] == "boom" and log[0]["latencyMs"] == 12


async def test_retry_schedules_one_manual_attempt_and_refuses_while_leased(
    service: Service, tenant: Tenant
):
    sub = await create_sub(service, tenant)
    await append(service, tenant)
    await dispatch_pending(service.ctx)
    (row,) = await delivery_rows(service, tenant, subscription_id=sub["id"])
    now = service.ctx.clock.now_ms()
    await set_delivery(
        service, row.id, status="failed", attempts=8, next_attempt_at=None, lease_until=now + 60_000
    )
    url = f"/v1/deliveries/{row.id}/retry"
    leased = await service.client.post(url, headers=tenant.admin_headers)
    assert leased.status_code == 409 and leased.json()["error"] == "delivery_in_flight"
    assert (await delivery_rows(service, tenant, id=row.id))[0].status == "failed"

    await set_delivery(service, row.id, lease_until=now - 1)
    resp = await service.client.post(url, headers=tenant.admin_headers)
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "pending" and resp.json()["id"] == row.id
    (after,) = await delivery_rows(service, tenant, id=row.id)
    assert after.status == "pending" and bool(after.manual) is True
    assert after.attempts == 8
    assert now - 5_000 <= after.next_attempt_at <= service.ctx.clock.now_ms()

    # a delivery still in its automatic schedule is only brought forward
    await set_delivery(service, row.id, manual=False, next_attempt_at=now + 3_600_000)
    await service.client.post(url, headers=tenant.admin_headers)
    (again,) = await delivery_rows(service, tenant, id=row.id)
    assert bool(again.manual) is False and again.next_attempt_at <= service.ctx.clock.now_ms()


async def test_recover_reschedules_failed_deliveries_in_the_window(
    service: Service, tenant: Tenant
):
    sub = await create_sub(service, tenant)
    for _ in range(4):
        await append(service, tenant)
    await dispatch_pending(service.ctx)
    rows = await delivery_rows(service, tenant, subscription_id=sub["id"])
    now = service.ctx.clock.now_ms()
    # two failed inside the window, one failed long before it, one succeeded
    await set_delivery(service, rows[0].id, status="failed", attempts=8, next_attempt_at=None)
    await set_delivery(service, rows[1].id, status="failed", attempts=3, next_attempt_at=None)
    await set_delivery(service, rows[2].id, status="failed", created_at=now - 20 * DAY_MS)
    await set_delivery(service, rows[3].id, status="succeeded", next_attempt_at=None)

    url = f"{SUBS}/{sub['id']}/recover"
    resp = await service.client.post(
        url, headers=tenant.admin_headers, json={"since": iso(now - DAY_MS)}
    )
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"scheduled": 2}
    after = {r.id: r for r in await delivery_rows(service, tenant, subscription_id=sub["id"])}
    for rid, attempts_made in ((rows[0].id, 8), (rows[1].id, 3)):
        assert after[rid].status == "pending" and after[rid].attempts == attempts_made
        assert after[rid].next_attempt_at is not None and not after[rid].manual
    assert after[rows[2].id].status == "failed"
    assert after[rows[3].id].status == "succeeded"

    too_long = await service.client.post(
        url, headers=tenant.admin_headers, json={"since": iso(now - 15 * DAY_MS)}
    )
    assert error_paths(too_long) == ["since"]
    too_long = await service.client.post(
        url,
        headers=tenant.admin_headers,
        json={"since": iso(now - 30 * DAY_MS), "until": iso(now - 15 * DAY_MS - 1)},
    )
    assert error_paths(too_long) == ["until"]
    backwards = await service.client.post(
        url, headers=tenant.admin_headers, json={"since": iso(now), "until": iso(now - 1000)}
    )
    assert error_paths(backwards) == ["until"]
    garbled = await service.client.post(url, headers=tenant.admin_headers, json={"since": "then"})
    assert error_paths(garbled) == ["since"]
    missing = await service.client.post(url, headers=tenant.admin_headers, json={})
    assert error_paths(missing) == ["since"]


async def test_replay_makes_new_deliveries_for_matching_events(service: Service, tenant: Tenant):
    before = await append(service, tenant, severity="critical")  # before the subscription
    sub = await create_sub(
        service, tenant, events=["incident.created"], filter={"severity": "critical"}
    )
    await append(service, tenant, severity="low")
    after = await append(service, tenant, severity="critical")
    await append(service, tenant, "remediation.proposed")
    await dispatch_pending(service.ctx)
    first = await delivery_rows(service, tenant, subscription_id=sub["id"])
    assert [r.event_id for r in first] == [after.id]

    now = service.ctx.clock.now_ms()
    url = f"{SUBS}/{sub['id']}/replay"
    resp = await service.client.post(
        url, headers=tenant.admin_headers, json={"since": iso(now - DAY_MS), "until": iso(now)}
    )
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"scheduled": 2}
    rows = await delivery_rows(service, tenant, subscription_id=sub["id"])
    new = [r for r in rows if r.id != first[0].id]
    assert sorted(r.event_id for r in new) == sorted([before.id, after.id])
    assert all(r.status == "pending" and r.payload is None for r in new)
    assert len({r.id for r in rows}) == 3

    empty = await service.client.post(
        url,
        headers=tenant.admin_headers,
        json={"since": iso(now - 3 * DAY_MS), "until": iso(now - 2 * DAY_MS)},
    )
    assert empty.json() == {"scheduled": 0}
    too_long = await service.client.post(
        url, headers=tenant.admin_headers, json={"since": iso(now - 15 * DAY_MS)}
    )
    assert error_paths(too_long) == ["since"]


async def test_another_tenants_ids_are_404(service: Service, tenant: Tenant, other_tenant: Tenant):
    sub = await create_sub(service, other_tenant)
    msg = (
        await service.client.post(f"{SUBS}/{sub['id']}/test", headers=other_tenant.admin_headers)
    ).json()["id"]
    window = {"since": iso(service.ctx.clock.now_ms() - DAY_MS)}
    s = f"{SUBS}/{sub['id']}"
    calls = [
        ("GET", s, None),
        ("PATCH", s, {"description": "mine now"}),
        ("DELETE", s, None),
        ("POST", f"{s}/rotate-secret", None),
        ("POST", f"{s}/test", None),
        ("GET", f"{s}/deliveries", None),
        ("POST", f"{s}/recover", window),
        ("POST", f"{s}/replay", window),
        ("GET", f"/v1/deliveries/{msg}", None),
        ("POST", f"/v1/deliveries/{msg}/retry", None),
        ("GET", f"{SUBS}/sub_01ARZ3NDEKTSV4RRFFQ69G5FAV", None),
        ("GET", "/v1/deliveries/msg_01ARZ3NDEKTSV4RRFFQ69G5FAV", None),
    ]
    for method, url, body in calls:
        resp = await service.client.request(method, url, headers=tenant.admin_headers, json=body)
        assert resp.status_code == 404, (method, url, resp.text)
        assert resp.json()["error"] in {"subscription_not_found", "delivery_not_found"}
    # and nothing of the other tenant changed
    got = await service.client.get(s, headers=other_tenant.admin_headers)
    assert got.status_code == 200 and got.json()["description"] is None
    assert (await service.client.get(SUBS, headers=tenant.admin_headers)).json()["count"] == 0


async def test_members_read_and_only_admins_write(service: Service, tenant: Tenant):
    sub = await create_sub(service, tenant)
    msg = (
        await service.client.post(f"{SUBS}/{sub['id']}/test", headers=tenant.admin_headers)
    ).json()["id"]
    member = service.token(tenant, "member")
    reader_key = (
        await service.client.post(
            "/v1/api-keys",
            headers=tenant.admin_headers,
            json={"name": "reader", "scopes": ["events:read"]},
        )
    ).json()["key"]
    window = {"since": iso(service.ctx.clock.now_ms() - DAY_MS)}
    s = f"{SUBS}/{sub['id']}"
    for headers in (member, {"X-API-Key": reader_key}):
        for url in (SUBS, s, f"{s}/deliveries", f"/v1/deliveries/{msg}"):
            resp = await service.client.get(url, headers=headers)
            assert resp.status_code == 200, (url, resp.text)
        writes = [
            ("POST", SUBS, {"url": "http://127.0.0.1:9/x", "events": ["*"]}),
            ("PATCH", s, {"description": "x"}),
            ("DELETE", s, None),
            ("POST", f"{s}/rotate-secret", None),
            ("POST", f"{s}/test", None),
            ("POST", f"{s}/recover", window),
            ("POST", f"{s}/replay", window),
            ("POST", f"/v1/deliveries/{msg}/retry", None),
        ]
        for method, url, body in writes:
            resp = await service.client.request(method, url, headers=headers, json=body)
            assert resp.status_code == 403, (method, url, resp.text)
            assert resp.json()["error"] == "forbidden"
    ingest = {"X-API-Key": tenant.ingest_key}
    assert (await service.client.get(SUBS, headers=ingest)).status_code == 403
    assert (await service.client.get(SUBS)).status_code == 401
    # nothing changed
    got = await service.client.get(s, headers=tenant.admin_headers)
    assert got.status_code == 200 and got.json()["description"] is None
