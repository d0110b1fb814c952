"""Cross-cutting behaviour: idempotency, rate limits, body limits, error shapes, operations."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from causeflow_sdk.models import sample_data
from tests.support.inproc import Service, Tenant, make_settings, running_service

pytestmark = pytest.mark.integration


def _event(title: str = "t") -> dict:
    return {"event": "incident.created", "data": sample_data("incident.created", title=title)}


async def test_idempotency_key_replays_and_refuses_reuse(service: Service, tenant: Tenant):
    hdr = {**tenant.key_headers, "Idempotency-Key": "abc-1"}
    first = await service.client.post("/v1/events", headers=hdr, json=_event("one"))
    again = await service.client.post("/v1/events", headers=hdr, json=_event("one"))
    assert first.status_code == again.status_code == 201
    assert first.content == again.content
    assert again.headers.get("idempotent-replayed") == "true"
    events = (
        await service.client.get(
            "/v1/events", headers=tenant.key_headers, params={"event": "incident.created"}
        )
    ).json()
    assert events["count"] == 1  # the replay stored nothing
    reused = await service.client.post("/v1/events", headers=hdr, json=_event("two"))
    assert reused.status_code == 422 and reused.json()["error"] == "idempotency_key_reused"


async def test_idempotency_keys_are_per_tenant(
    service: Service, tenant: Tenant, other_tenant: Tenant
):
    a = await service.client.post(
        "/v1/events", json=_event("one"), headers={**tenant.key_headers, "Idempotency-Key": "same"}
    )
    b = await service.client.post(
        "/v1/events",
        json=_event("one"),
        headers={**other_tenant.key_headers, "Idempotency-Key": "same"},
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["tenantId"] != b.json()["tenantId"]


async def test_idempotency_in_flight_is_409(service: Service, tenant: Tenant):
    from causeflow.api.credentials import principal_from_key
    from causeflow.api.idempotency import record_key
    from causeflow.api.tables import idempotency_keys

    now = service.ctx.clock.now_ms()
    caller = await principal_from_key(service.ctx, tenant.api_key)
    tenant_id, key = record_key(caller, "busy")
    async with service.ctx.db.transaction() as tx:
        await tx.execute(
            idempotency_keys.insert().values(
                tenant_id=tenant_id, key=key, request_hash="x", state="in_flight", created_at=now
            )
        )
    resp = await service.client.post(
        "/v1/events", json=_event(), headers={**tenant.key_headers, "Idempotency-Key": "busy"}
    )
    assert resp.status_code == 409 and resp.json()["error"] == "idempotency_key_in_flight"


async def test_the_answer_is_stored_before_the_client_has_it(service: Service, tenant: Tenant):
    # The same request sent again at the moment the first answer's last bytes leave (as a
    # client would once it has them) must get the stored answer, not 409 in flight.
    import httpx

    app = service.client._transport.app
    hdr = {**tenant.key_headers, "Idempotency-Key": "quick-1"}
    again: list[httpx.Response] = []

    async def resend() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40001))
        async with httpx.AsyncClient(transport=transport, base_url="http://cf.test") as client:
            return await client.post("/v1/events", headers=hdr, json=_event("quick"))

    async def spy(scope, receive, send):
        async def watching(message):
            last = message["type"] == "http.response.body" and not message.get("more_body")
            if last and not again:
                again.append(await resend())
            await send(message)

        await app(scope, receive, watching)

    transport = httpx.ASGITransport(app=spy, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://cf.test") as client:
        first = await client.post("/v1/events", headers=hdr, json=_event("quick"))
    assert first.status_code == 201
    assert again[0].status_code == 201, again[0].text
    assert again[0].headers.get("idempotent-replayed") == "true"
    assert again[0].content == first.content


async def test_client_errors_do_not_consume_but_are_replayed(service: Service, tenant: Tenant):
    hdr = {**tenant.key_headers, "Idempotency-Key": "bad-1"}
    bad = {"event": "incident.created", "data": {}}
    first = await service.client.post("/v1/events", headers=hdr, json=bad)
    second = await service.client.post("/v1/events", headers=hdr, json=bad)
    assert first.status_code == second.status_code == 422
    assert first.json() == second.json()


async def test_rate_limit_headers_and_429(tmp_path: Path, database_url: str):
    settings = make_settings(tmp_path, database_url, rate_limit_per_minute=3)
    async with running_service(settings) as svc:
        tenant = await svc.tenant()
        # the count lives in minute windows of the clock: start the requests well inside one
        left = 60 - time.time() % 60
        if left < 5:
            await asyncio.sleep(left + 0.1)
        seen = []
        for _ in range(3):
            resp = await svc.client.get("/v1/events", headers=tenant.key_headers)
            assert resp.status_code == 200
            seen.append(int(resp.headers["x-ratelimit-remaining"]))
            assert resp.headers["x-ratelimit-limit"] == "3"
            assert int(resp.headers["x-ratelimit-reset"]) > 0
        assert seen == [2, 1, 0]
        over = await svc.client.get("/v1/events", headers=tenant.key_headers)
        assert over.status_code == 429
        assert over.json()["error"] == "rate_limit_exceeded"
        assert int(over.headers["retry-after"]) >= 1
        assert over.headers["x-ratelimit-remaining"] == "0"
        # other tenants have their own budget
        other = await svc.tenant("other")
        assert (await svc.client.get("/v1/events", headers=other.key_headers)).status_code == 200
        # errors carry the headers too
        missing = await svc.client.get("/v1/nothing-here", headers=other.key_headers)
        assert missing.status_code == 404 and "x-ratelimit-limit" in missing.headers


async def test_rate_limit_plan_and_default(tmp_path: Path):
    settings = make_settings(tmp_path, rate_limit_per_minute=None, default_plan="starter")
    async with running_service(settings) as svc:
        starter = await svc.tenant()
        pro = await svc.tenant("p", plan="pro")
        r1 = await svc.client.get("/v1/events", headers=starter.key_headers)
        r2 = await svc.client.get("/v1/events", headers=pro.key_headers)
        assert r1.headers["x-ratelimit-limit"] == "100"
        assert r2.headers["x-ratelimit-limit"] == "500"


async def test_rate_limit_is_shared_across_processes_on_postgres(tmp_path: Path):
    from tests.support.pg import fresh_database_async, require_pg

    require_pg()
    async with fresh_database_async() as url:
        s1 = make_settings(
            tmp_path / "a", url, rate_limit_per_minute=10, rate_limit_sync_seconds=0.05
        )
        s2 = make_settings(
            tmp_path / "b", url, rate_limit_per_minute=10, rate_limit_sync_seconds=0.05
        )
        async with running_service(s1) as one, running_service(s2) as two:
            tenant = await one.tenant()
            # Budgets are fixed one-minute windows of the wall clock: start in a fresh one, so
            # the 16 requests (about 2 s) cannot straddle a window's end and find two budgets.
            into_window = time.time() % 60
            if into_window > 50:
                await asyncio.sleep(60 - into_window + 0.1)
            codes = []
            for i in range(16):
                svc = one if i % 2 == 0 else two
                codes.append(
                    (await svc.client.get("/v1/events", headers=tenant.key_headers)).status_code
                )
                await asyncio.sleep(0.08)  # let the counts sync
            assert codes.count(200) <= 11  # a small overshoot is allowed
            assert codes.count(429) >= 5


async def test_body_over_one_mib_is_413(service: Service, tenant: Tenant):
    big = b'{"event":"incident.created","data":{"title":"' + b"x" * (1024 * 1024) + b'"}}'
    resp = await service.client.post(
        "/v1/events",
        content=big,
        headers={**tenant.key_headers, "content-type": "application/json"},
    )
    assert resp.status_code == 413 and resp.json()["error"] == "payload_too_large"

    async def chunks():
        for _ in range(20):
            yield b"x" * 65536

    streamed = await service.client.post(
        "/v1/events",
        content=chunks(),
        headers={**tenant.key_headers, "content-type": "application/json"},
    )
    assert streamed.status_code == 413


async def test_unknown_routes_and_methods_use_the_error_shape(service: Service, tenant: Tenant):
    resp = await service.client.get("/v1/does-not-exist", headers=tenant.key_headers)
    assert resp.status_code == 404 and resp.json()["error"] == "not_found"
    resp = await service.client.delete("/v1/events", headers=tenant.key_headers)
    assert resp.status_code == 405 and resp.json()["error"] == "method_not_allowed"
    resp = await service.client.get(
        "/v1/events", headers=tenant.key_headers, params={"limit": 1000}
    )
    assert resp.status_code == 422 and resp.json()["details"]["errors"][0]["path"]
    resp = await service.client.get(
        "/v1/events", headers=tenant.key_headers, params={"cursor": "!!!"}
    )
    assert resp.status_code == 422


async def test_operations_endpoints(service: Service):
    assert (await service.client.get("/healthz")).json() == {"status": "ok"}
    ready = await service.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    metrics = await service.client.get("/metrics")
    assert "causeflow_events_appended_total" in metrics.text
    spec = (await service.client.get("/openapi.json")).json()
    assert "/v1/events" in spec["paths"]
    assert (await service.client.get("/docs")).status_code == 200


async def test_nul_characters_are_client_errors(service: Service, tenant: Tenant):
    resp = await service.client.get("/v1/users/a%00b", headers=tenant.admin_headers)
    assert resp.status_code == 400 and resp.json()["error"] == "bad_request"
    resp = await service.client.get(
        "/v1/events", headers=tenant.key_headers, params={"event": "a\x00b"}
    )
    assert resp.status_code == 400
    resp = await service.client.post(
        "/v1/users", headers=tenant.admin_headers, json={"email": "a\x00b@example.com"}
    )
    # PostgreSQL cannot store NUL in text: a client error there, never a 5xx
    assert resp.status_code in (201, 422), resp.text


async def test_root_sends_a_browser_to_the_dashboard(sqlite_service: Service):
    resp = await sqlite_service.client.get("/")
    assert resp.status_code == 307 and resp.headers["location"] == "/ui"
    # without a session the dashboard then asks to sign in
    page = await sqlite_service.client.get(resp.headers["location"])
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
    spec = (await sqlite_service.client.get("/openapi.json")).json()
    assert "/" not in spec["paths"]
