"""Endpoint statistics and the delivery search: the figures against what a real loopback
receiver counted, and the search across subscriptions with its filters, pages and tenant
isolation, on both backends. The arithmetic from tables is in test_stats_rules.py."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from causeflow import ids
from causeflow.clock import ms_to_rfc3339
from causeflow.webhook.stats import HOUR_MS, SERIES_BUCKETS
from causeflow_sdk.models import sample_data
from tests.support.inproc import Service, Tenant, make_settings, running_service
from tests.support.receiver import Receiver

from .delivery_support import FAST

SUBS = "/v1/webhook-subscriptions"


@dataclass
class Flaky:
    """Fails a seeded random share of requests with 500 and counts what it answered."""

    share: float
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    ok: int = 0
    failed: int = 0

    async def respond(self, request: web.Request, stopping: asyncio.Event) -> web.StreamResponse:
        if self.rng.random() < self.share:
            self.failed += 1
            return web.Response(status=500, body=b"flaky")
        self.ok += 1
        return web.Response(status=204)


@pytest.fixture
async def live(tmp_path: Path, database_url: str) -> AsyncIterator[Service]:
    settings = make_settings(tmp_path, database_url, run_workers=True, **FAST)
    async with running_service(settings) as svc:
        yield svc


async def _publish(svc: Service, tenant: Tenant, **data: Any) -> dict[str, Any]:
    resp = await svc.client.post(
        "/v1/events",
        headers=tenant.admin_headers,
        json={"event": "incident.created", "data": sample_data("incident.created", **data)},
    )
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def _settle(svc: Service, tenant: Tenant, sub_id: str, count: int) -> None:
    """Until the subscription has `count` deliveries and none of them is pending."""
    deadline = time.monotonic() + 30
    while True:
        resp = await svc.client.get(
            "/v1/deliveries",
            headers=tenant.admin_headers,
            params={"subscriptionId": sub_id, "limit": "100"},
        )
        assert resp.status_code == 200, resp.text
        items = resp.json()["items"]
        if len(items) >= count and all(d["status"] != "pending" for d in items):
            return
        assert time.monotonic() < deadline, items
        await asyncio.sleep(0.05)


@pytest.mark.integration
async def test_stats_match_what_the_receiver_counted(live: Service) -> None:
    tenant = await live.tenant("acme")
    flaky = Flaky(share=0.3)
    async with Receiver() as receiver:
        receiver.set_behavior("/hook", flaky)
        url = receiver.url_for("/hook")
        resp = await live.client.post(
            SUBS, headers=tenant.admin_headers, json={"url": url, "events": ["incident.*"]}
        )
        sub = resp.json()
        for _ in range(25):
            await _publish(live, tenant)
        await _settle(live, tenant, sub["id"], 25)
        stats = (
            await live.client.get(f"{SUBS}/{sub['id']}/stats", headers=tenant.admin_headers)
        ).json()
    assert flaky.failed > 0 and flaky.ok > 0
    for window in ("lastHour", "lastDay"):
        figures = stats[window]
        assert figures["attempts"] == flaky.ok + flaky.failed
        assert figures["succeeded"] == flaky.ok and figures["failed"] == flaky.failed
        assert figures["successRate"] == round(flaky.ok / (flaky.ok + flaky.failed), 4)
        assert figures["latencyMs"]["p50"] is not None
        assert figures["latencyMs"]["p50"] <= figures["latencyMs"]["p95"]
        assert figures["lastError"]["statusCode"] == 500
    bars = stats["series"]["buckets"]
    assert len(bars) == SERIES_BUCKETS and stats["series"]["bucketSeconds"] == HOUR_MS // 1000
    assert sum(b["succeeded"] for b in bars) == flaky.ok
    assert sum(b["failed"] for b in bars) == flaky.failed
    assert stats["backlog"] == {"pending": 0, "oldestAgeSeconds": None}
    assert stats["enabled"] is True


@pytest.mark.integration
async def test_a_failing_endpoint_shows_its_backlog_and_failure_state(live: Service) -> None:
    tenant = await live.tenant("acme")
    async with Receiver() as receiver:
        receiver.set_behavior("/hook", Flaky(share=1.0))
        resp = await live.client.post(
            SUBS,
            headers=tenant.admin_headers,
            json={"url": receiver.url_for("/hook"), "events": ["*"]},
        )
        sub = resp.json()
        for _ in range(3):
            await _publish(live, tenant)
        await _settle(live, tenant, sub["id"], 3)  # every delivery used up its 4 attempts
        stats = (
            await live.client.get(f"{SUBS}/{sub['id']}/stats", headers=tenant.admin_headers)
        ).json()
    assert stats["lastHour"]["succeeded"] == 0 and stats["lastHour"]["failed"] == 12
    assert stats["consecutiveFailures"] == 12
    assert stats["failingSince"] is not None
    assert (
        stats["autoDisableAfter"] is not None and stats["autoDisableAfter"] > stats["failingSince"]
    )


@pytest.mark.integration
async def test_stats_of_a_quiet_or_foreign_subscription(
    service: Service, tenant: Tenant, other_tenant: Tenant
) -> None:
    resp = await service.client.post(
        SUBS,
        headers=tenant.admin_headers,
        json={"url": "http://127.0.0.1:9/hook", "events": ["*"]},
    )
    sub = resp.json()
    quiet = await service.client.get(f"{SUBS}/{sub['id']}/stats", headers=tenant.admin_headers)
    assert quiet.status_code == 200
    body = quiet.json()
    assert body["lastDay"]["attempts"] == 0 and body["consecutiveFailures"] == 0
    assert body["failingSince"] is None and body["autoDisableAfter"] is None
    foreign = await service.client.get(
        f"{SUBS}/{sub['id']}/stats", headers=other_tenant.admin_headers
    )
    assert foreign.status_code == 404


async def _subscribe(svc: Service, tenant: Tenant, **body: Any) -> dict[str, Any]:
    payload = {"url": "http://127.0.0.1:9/hook", "events": ["*"], **body}
    resp = await svc.client.post(SUBS, headers=tenant.admin_headers, json=payload)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


@pytest.mark.integration
async def test_delivery_search_across_subscriptions(
    service: Service, tenant: Tenant, other_tenant: Tenant
) -> None:
    from tests.support.webhook import dispatch_pending

    one = await _subscribe(service, tenant)
    two = await _subscribe(service, tenant, events=["incident.created"])
    await _subscribe(service, other_tenant)
    inc_a, inc_b = ids.new_id("inc"), ids.new_id("inc")
    ev_a = await _publish(service, tenant, incidentId=inc_a)
    ev_b = await _publish(service, tenant, incidentId=inc_b)
    await _publish(service, other_tenant, incidentId=inc_a)
    await dispatch_pending(service.ctx)

    async def search(headers: dict[str, str] = tenant.admin_headers, **q: str) -> Any:
        resp = await service.client.get("/v1/deliveries", headers=headers, params=q)
        return resp

    by_event = (await search(eventId=ev_a["id"])).json()
    assert {d["subscriptionId"] for d in by_event["items"]} == {one["id"], two["id"]}
    assert {d["eventId"] for d in by_event["items"]} == {ev_a["id"]}
    by_incident = (await search(incidentId=inc_b)).json()
    assert {d["eventId"] for d in by_incident["items"]} == {ev_b["id"]}
    assert len(by_incident["items"]) == 2
    everything = (await search()).json()
    assert len(everything["items"]) == 4  # the other tenant's never
    times = [d["createdAt"] for d in everything["items"]]
    assert times == sorted(times, reverse=True)
    assert (await search(status="succeeded")).json()["items"] == []
    assert len((await search(status="pending")).json()["items"]) == 4
    assert len((await search(subscriptionId=two["id"])).json()["items"]) == 2
    future = ms_to_rfc3339(service.ctx.clock.now_ms() + 60_000)
    assert (await search(since=future)).json()["items"] == []
    assert len((await search(until=future)).json()["items"]) == 4
    # pages: one at a time, every delivery exactly once
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = (await search(**params)).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(d["id"] for d in everything["items"])
    # bad input and other tenants
    bad = await search(since="yesterday")
    assert bad.status_code == 422 and bad.json()["details"]["errors"][0]["path"] == "query.since"
    assert (await search(status="lost")).status_code == 422
    foreign = await search(other_tenant.admin_headers, eventId=ev_a["id"])
    assert foreign.json()["items"] == []
    assert (await search(other_tenant.admin_headers, subscriptionId=one["id"])).status_code == 404


@pytest.mark.integration
async def test_delivery_search_refuses_until_before_since(service: Service, tenant: Tenant) -> None:
    """An inverted window could match nothing: it is the client's mistake, as for recover."""
    now = service.ctx.clock.now_ms()
    resp = await service.client.get(
        "/v1/deliveries",
        headers=tenant.admin_headers,
        params={"since": ms_to_rfc3339(now), "until": ms_to_rfc3339(now - 1)},
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "validation_error"
    assert resp.json()["details"]["errors"][0]["path"] == "query.until"
    same = await service.client.get(
        "/v1/deliveries",
        headers=tenant.admin_headers,
        params={"since": ms_to_rfc3339(now), "until": ms_to_rfc3339(now)},
    )
    assert same.status_code == 200, same.text
