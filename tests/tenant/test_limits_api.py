"""Per-tenant limits through the API: a platform admin reads and sets them (partial, null
resets), a tenant reads its own, and each is enforced for that tenant alone: the publish rate
(a batch counts its events), the inbound rate, the request budget and the subscription cap.
Changes apply at once in the process that made them, and within the cache's TTL elsewhere."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from causeflow.event.tables import events
from causeflow.tenant import plans
from causeflow_sdk.models import sample_data
from tests.support.clock import FrozenClock
from tests.support.inproc import Service, Tenant, make_settings, running_service

pytestmark = pytest.mark.integration


def platform(service: Service) -> dict[str, str]:
    token = service.ctx.tokens.mint_platform_admin(now=time.time(), ttl=600)
    return {"Authorization": f"Bearer {token}"}


def window_clock() -> FrozenClock:
    """A clock standing at the start of the current one-minute window (budgets are counted in
    fixed windows; tokens are checked against the real time)."""
    now = int(time.time() * 1000)
    return FrozenClock(start_ms=now - now % 60_000)


def limits_url(tenant_id: str) -> str:
    return f"/v1/tenants/{tenant_id}/limits"


async def put_limits(service: Service, tenant_id: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await service.client.put(limits_url(tenant_id), headers=platform(service), json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) <= {"error", "message", "details"} and body["message"]
    assert body["error"] == code
    return dict(body)


def assert_429(resp: httpx.Response) -> dict[str, Any]:
    body = assert_error(resp, 429, "rate_limit_exceeded")
    assert int(resp.headers["retry-after"]) >= 1
    return body


def _created(n: int) -> dict[str, Any]:
    return {"event": "incident.created", "data": sample_data("incident.created", title=f"t{n}")}


async def publish(service: Service, tenant: Tenant, count: int = 1) -> httpx.Response:
    """One event (`POST /v1/events`, 201) or a batch of `count` (200)."""
    if count == 1:
        return await service.client.post("/v1/events", headers=tenant.key_headers, json=_created(0))
    return await service.client.post(
        "/v1/events/batch",
        headers=tenant.key_headers,
        json={"events": [_created(n) for n in range(count)]},
    )


async def stored_events(service: Service, tenant: Tenant) -> int:
    async with service.ctx.db.read() as conn:
        stmt = select(func.count()).select_from(events).where(events.c.tenant_id == tenant.id)
        return int((await conn.execute(stmt)).scalar_one())


async def test_a_platform_admin_sets_and_resets_a_tenants_limits(tmp_path: Path, database_url: str):
    settings = make_settings(tmp_path, database_url, max_subscriptions_per_tenant=100)
    async with running_service(settings) as service:
        acme, globex = await service.tenant("acme"), await service.tenant("globex")
        admin = platform(service)
        first = (await service.client.get(limits_url(acme.id), headers=admin)).json()
        assert first["tenantId"] == acme.id and first["plan"] == "business"
        assert all(v is None for v in first["overrides"].values())
        assert first["effective"]["maxSubscriptions"] == 100
        assert first["effective"]["eventRetentionDays"] == settings.retention_days

        changed = await put_limits(service, acme.id, {"maxSubscriptions": 3, "maxStreams": 2})
        assert changed["overrides"]["maxSubscriptions"] == 3
        assert changed["effective"]["maxStreams"] == 2
        again = await put_limits(service, acme.id, {"maxStreams": None, "eventRetentionDays": 7})
        assert again["overrides"]["maxSubscriptions"] == 3  # left out: unchanged
        assert again["overrides"]["maxStreams"] is None  # null: back to the default
        assert again["effective"]["maxStreams"] == settings.sse_max_streams_per_tenant
        assert again["effective"]["eventRetentionDays"] == 7

        own = await service.client.get("/v1/tenant/limits", headers=acme.key_headers)
        assert own.status_code == 200 and own.json() == again
        other = await service.client.get("/v1/tenant/limits", headers=globex.key_headers)
        assert other.json()["overrides"]["maxSubscriptions"] is None


async def test_the_limits_routes_refuse_what_they_should(sqlite_service: Service):
    service = sqlite_service
    acme = await service.tenant("acme")
    admin = platform(service)
    for method in ("GET", "PUT"):
        resp = await service.client.request(
            method, limits_url("ten_unknown"), headers=admin, json={"maxStreams": 1}
        )
        assert_error(resp, 404, "not_found")
    # a tenant's admin may read its own limits, not set them or read another's
    resp = await service.client.put(limits_url(acme.id), headers=acme.admin_headers, json={})
    assert_error(resp, 403, "forbidden")
    resp = await service.client.get(limits_url(acme.id), headers=acme.key_headers)
    assert_error(resp, 403, "forbidden")
    resp = await service.client.get("/v1/tenant/limits", headers=admin)
    assert_error(resp, 403, "forbidden")
    assert_error(await service.client.get("/v1/tenant/limits"), 401, "unauthorized")
    bad: list[Any] = [
        {"maxStreams": 0},
        {"maxStreams": -1},
        {"maxStreams": 100_001},
        {"eventRetentionDays": 3651},
        {"publishPerMinute": "5"},
        {"publishPerMinute": 2.5},
        {"ingestPerMinute": True},
        {"maxSubscriptions": 10_001},
        {"unknown": 1},
        [1],
    ]
    for body in bad:
        resp = await service.client.put(limits_url(acme.id), headers=admin, json=body)
        details = assert_error(resp, 422, "validation_error")["details"]
        assert details["errors"] and all(e["path"] and e["message"] for e in details["errors"])
    # nothing of that was stored
    got = (await service.client.get(limits_url(acme.id), headers=admin)).json()
    assert all(v is None for v in got["overrides"].values())


async def test_publishing_over_the_tenants_rate_is_429_and_spares_other_tenants(tmp_path: Path):
    clock = window_clock()
    async with running_service(make_settings(tmp_path), clock) as service:
        acme, globex = await service.tenant("acme"), await service.tenant("globex")
        assert (await publish(service, acme)).status_code == 201  # limits now cached: no limit
        await put_limits(service, acme.id, {"publishPerMinute": 5})
        before = await stored_events(service, acme)
        assert (await publish(service, acme, 3)).status_code == 200
        body = assert_429(await publish(service, acme, 3))  # 2 left: the batch is refused whole
        assert body["details"] == {"limit": 5, "remaining": 2, "requested": 3}
        assert await stored_events(service, acme) == before + 3
        assert (await publish(service, acme, 2)).status_code == 200
        assert_429(await publish(service, acme))
        for _ in range(3):  # another tenant's budget is its own (no limit by default)
            assert (await publish(service, globex, 10)).status_code == 200
        assert await stored_events(service, acme) == before + 5
        clock.advance(60)  # the next window
        assert (await publish(service, acme, 5)).status_code == 200


async def test_the_default_publish_rate_comes_from_the_settings(tmp_path: Path):
    clock = window_clock()
    settings = make_settings(tmp_path, publish_rate_limit_per_minute=2)
    async with running_service(settings, clock) as service:
        acme, globex = await service.tenant("acme"), await service.tenant("globex")
        await put_limits(service, globex.id, {"publishPerMinute": 50})
        assert (await publish(service, acme, 2)).status_code == 200
        assert "2 events per minute" in assert_429(await publish(service, acme))["message"]
        assert (await publish(service, globex, 20)).status_code == 200
        # A batch larger than the whole budget is refused too, and stores nothing.
        before = await stored_events(service, acme)
        clock.advance(60)
        assert_429(await publish(service, acme, 3))
        assert await stored_events(service, acme) == before


async def test_inbound_alerts_over_the_tenants_rate_are_429(tmp_path: Path):
    clock = window_clock()
    settings = make_settings(tmp_path, ingest_rate_limit_per_minute=1000)
    async with running_service(settings, clock) as service:
        acme, globex = await service.tenant("acme"), await service.tenant("globex")
        await put_limits(service, acme.id, {"ingestPerMinute": 2})

        async def alert(tenant: Tenant, n: int) -> httpx.Response:
            return await service.client.post(
                f"/v1/webhooks/{tenant.id}/custom",
                headers={"X-API-Key": tenant.ingest_key},
                json={"externalId": f"disk-{n}", "title": "Disk full"},
            )

        for n in range(2):
            resp = await alert(acme, n)
            assert resp.status_code == 202, resp.text
            assert resp.headers["x-ratelimit-limit"] == "2"
        refused = await alert(acme, 2)
        assert "2 requests per minute" in assert_429(refused)["message"]
        assert refused.headers["x-ratelimit-remaining"] == "0"
        for n in range(5):
            resp = await alert(globex, n)
            assert resp.status_code == 202 and resp.headers["x-ratelimit-limit"] == "1000"


async def test_the_request_budget_can_be_set_per_tenant(tmp_path: Path):
    clock = window_clock()
    async with running_service(make_settings(tmp_path), clock) as service:
        acme, globex = await service.tenant("acme"), await service.tenant("globex")
        await put_limits(service, acme.id, {"requestsPerMinute": 3})
        answers = [
            await service.client.get("/v1/events", headers=acme.key_headers) for _ in range(4)
        ]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert answers[0].headers["x-ratelimit-limit"] == "3"
        assert_429(answers[3])
        other = await service.client.get("/v1/events", headers=globex.key_headers)
        assert other.status_code == 200 and other.headers["x-ratelimit-limit"] == "0"


async def test_subscriptions_beyond_the_tenants_maximum_are_refused(sqlite_service: Service):
    service = sqlite_service
    acme, globex = await service.tenant("acme"), await service.tenant("globex")
    subs = "/v1/webhook-subscriptions"

    async def create(tenant: Tenant, n: int) -> httpx.Response:
        body = {"url": f"http://127.0.0.1:9/hook{n}", "events": ["*"]}
        return await service.client.post(subs, headers=tenant.admin_headers, json=body)

    assert (await create(acme, 0)).status_code == 201
    await put_limits(service, acme.id, {"maxSubscriptions": 2})
    assert (await create(acme, 1)).status_code == 201
    body = assert_error(await create(acme, 2), 409, "limit_reached")
    assert "2 webhook subscriptions" in body["message"]
    listed = await service.client.get(subs, headers=acme.admin_headers)
    assert listed.json()["count"] == 2  # nothing created
    for n in range(3):
        assert (await create(globex, n)).status_code == 201
    await put_limits(service, acme.id, {"maxSubscriptions": None})  # back to the default
    assert (await create(acme, 3)).status_code == 201


async def test_a_change_from_another_process_applies_within_the_cache_ttl(tmp_path: Path):
    settings = make_settings(tmp_path, tenant_limits_cache_seconds=0.2)
    async with running_service(settings) as service:
        acme = await service.tenant("acme")
        got = await service.ctx.tenant_limits(acme.id)
        assert got.max_streams == settings.sse_max_streams_per_tenant
        async with service.ctx.db.transaction() as tx:  # as another process would
            await plans.write_limits(
                tx, service.ctx.db.dialect, acme.id, {"max_streams": 4}, int(time.time() * 1000)
            )
        assert (await service.ctx.tenant_limits(acme.id)).max_streams != 4  # still cached
        await asyncio.sleep(0.3)
        assert (await service.ctx.tenant_limits(acme.id)).max_streams == 4
