"""`POST /v1/events` through the gateway's direct handler (`publish.router.answer_publish`)
answers every request exactly as the route does without it: the plain, valid publish itself,
everything else (no credential, a credential the route refuses, an `Idempotency-Key`, another
content type, a body that does not validate) handed on to the route."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from causeflow.api.gateway import Gateway
from causeflow.publish.router import answer_publish
from causeflow_sdk.models import sample_data
from tests.support.clock import FrozenClock
from tests.support.inproc import Service, Tenant, make_settings, running_service

pytestmark = pytest.mark.integration

ROUTE = ("POST", "/v1/events")
VALID = {"event": "incident.created", "data": sample_data("incident.created")}
# headers that differ between two answers to the same request
_VARYING = {"x-request-id", "date"}


class Switch:
    """The app's gateway with its direct handler on or off; counts what it handed on."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.handed_on = 0

    def on(self) -> None:
        async def counted(ctx: Any, scope: Any, receive: Any, send: Any, app: Any) -> None:
            async def onward(*args: Any) -> None:
                self.handed_on += 1
                await app(*args)

            await answer_publish(ctx, scope, receive, send, onward)

        self.gateway._fast_routes[ROUTE] = counted

    def off(self) -> None:
        self.gateway._fast_routes.pop(ROUTE, None)


def _gateways(app: Any) -> Iterator[Any]:
    while app is not None:
        yield app
        app = getattr(app, "app", None)


async def switch_of(service: Service) -> Switch:
    transport = service.client._transport
    assert isinstance(transport, httpx.ASGITransport)
    app: Any = transport.app
    await service.client.get("/healthz")  # the middleware stack is built on first use
    found = [g for g in _gateways(app.middleware_stack) if isinstance(g, Gateway)]
    assert len(found) == 1
    assert found[0]._fast_routes.get(ROUTE) is answer_publish
    return Switch(found[0])


def _normalized(resp: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    body: Any = resp.content
    if resp.headers.get("content-type") == "application/json":
        body = orjson.loads(resp.content)
        if resp.status_code == 201:  # a new event each time
            body = {**body, "id": "evt", "timestamp": "t"}
    headers = {k: v for k, v in resp.headers.items() if k not in _VARYING}
    if "content-length" in headers and resp.status_code == 201:
        headers.pop("content-length")  # the ids are of one length, the timestamps too
    return resp.status_code, body, headers


async def both_ways(service: Service, switch: Switch, **request: Any) -> tuple[Any, bool]:
    """The answer with the direct handler and without (equal), and whether it answered."""
    switch.on()
    before = switch.handed_on
    fast = await service.client.post("/v1/events", **request)
    answered_itself = switch.handed_on == before
    switch.off()
    slow = await service.client.post("/v1/events", **request)
    switch.on()
    assert _normalized(fast) == _normalized(slow), (fast.text, slow.text)
    return _normalized(fast), answered_itself


JSON = {"Content-Type": "application/json"}


async def test_the_plain_publish_is_answered_directly_like_the_route(
    service: Service, tenant: Tenant
) -> None:
    switch = await switch_of(service)
    body = orjson.dumps(VALID)
    for content_type in ("application/json", "application/json; charset=utf-8", "Application/JSON"):
        headers = {**tenant.key_headers, "Content-Type": content_type}
        (status, answer, _), direct = await both_ways(
            service, switch, headers=headers, content=body
        )
        assert (status, direct) == (201, True), content_type
        assert answer["event"] == "incident.created" and answer["tenantId"] == tenant.id
    # refusals of the publish itself (type, schema, a producer's reference) come from it too
    engine = await _key(service, tenant, ["events:publish"])
    refusals = [
        (tenant.key_headers, {"event": "incident.exploded", "data": {}}, 422),
        (tenant.key_headers, {**VALID, "data": {**VALID["data"], "severity": "x"}}, 422),
        (engine, VALID, 403),
        (engine, {"event": "investigation.progress", "data": _progress("inc_" + "0" * 26)}, 404),
    ]
    for headers, sent, expected in refusals:
        (status, answer, _), direct = await both_ways(
            service, switch, headers={**headers, **JSON}, content=orjson.dumps(sent)
        )
        assert (status, direct) == (expected, True), answer


async def test_every_other_request_is_handed_on_to_the_route(
    service: Service, tenant: Tenant
) -> None:
    switch = await switch_of(service)
    body = orjson.dumps(VALID)
    viewer = service.token(tenant, role="viewer")
    cases: list[tuple[dict[str, str], bytes, int]] = [
        ({}, body, 401),  # no credential
        (viewer, body, 403),  # a credential the route refuses
        (tenant.key_headers, body, 422),  # no content type: not read as JSON
        ({**tenant.key_headers, "Content-Type": "text/plain"}, body, 422),
        ({**tenant.key_headers, "Content-Type": "application/cloudevents+json"}, body, 201),
        ({**tenant.key_headers, **JSON}, b"{not json", 422),
        ({**tenant.key_headers, **JSON}, b"", 422),
        ({**tenant.key_headers, **JSON}, b'{"event":"a","event":"b","data":{}}', 422),
        ({**tenant.key_headers, **JSON}, orjson.dumps({**VALID, "extra": 1}), 422),
        ({**tenant.key_headers, **JSON}, orjson.dumps({**VALID, "test": "maybe"}), 422),
        ({**tenant.key_headers, **JSON}, orjson.dumps([VALID]), 422),
    ]
    for headers, content, expected in cases:
        (status, answer, _), direct = await both_ways(
            service, switch, headers=headers, content=content
        )
        assert status == expected, (headers, content, answer)
        assert not direct, (headers, content)


async def test_an_idempotency_key_goes_to_the_route_and_replays(
    service: Service, tenant: Tenant
) -> None:
    switch = await switch_of(service)
    switch.on()
    headers = {**tenant.key_headers, **JSON, "Idempotency-Key": "once"}
    first = await service.client.post("/v1/events", headers=headers, content=orjson.dumps(VALID))
    again = await service.client.post("/v1/events", headers=headers, content=orjson.dumps(VALID))
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true" and again.content == first.content
    assert switch.handed_on == 2


async def test_the_publish_budget_refuses_alike(tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    clock = FrozenClock(start_ms=now - now % 60_000)
    settings = make_settings(tmp_path, publish_rate_limit_per_minute=1)
    async with running_service(settings, clock) as service:
        acme = await service.tenant("acme")
        switch = await switch_of(service)
        request = {"headers": {**acme.key_headers, **JSON}, "content": orjson.dumps(VALID)}
        switch.on()
        assert (await service.client.post("/v1/events", **request)).status_code == 201
        (status, answer, headers), direct = await both_ways(service, switch, **request)
        assert (status, direct) == (429, True)
        assert answer["error"] == "rate_limit_exceeded" and "retry-after" in headers


async def _key(service: Service, tenant: Tenant, scopes: list[str]) -> dict[str, str]:
    created = await service.client.post(
        "/v1/api-keys", headers=tenant.admin_headers, json={"name": "k", "scopes": scopes}
    )
    assert created.status_code == 201, created.text
    return {"X-API-Key": created.json()["key"]}


def _progress(incident_id: str) -> dict[str, Any]:
    return sample_data("investigation.progress", incidentId=incident_id)


async def test_a_publish_on_sqlite_is_one_short_transaction(tmp_path: Path) -> None:
    """The statements of a lone `POST /v1/events` on SQLite, with no other writer about: its
    group's BEGIN and COMMIT around its savepoint, one position reservation, one insert."""
    settings = make_settings(tmp_path, run_workers=False)
    async with running_service(settings) as service:
        acme = await service.tenant("acme")
        headers = {**acme.key_headers, **JSON}
        first = await service.client.post("/v1/events", headers=headers, json=VALID)
        assert first.status_code == 201  # the writer connection is open from here on
        group = service.ctx.db._group
        assert group is not None
        raw = group.conn.connection.dbapi_connection
        statements: list[str] = []
        raw.set_trace_callback(statements.append)
        try:
            resp = await service.client.post("/v1/events", headers=headers, json=VALID)
        finally:
            raw.set_trace_callback(None)
        assert resp.status_code == 201
        verbs = [" ".join(s.split()[:3]) for s in statements]
        assert verbs == [
            "BEGIN IMMEDIATE",
            "SAVEPOINT member",
            "INSERT INTO event_heads",
            "INSERT INTO events",
            "RELEASE member",
            "COMMIT",
        ], statements


async def test_a_revoked_key_publishes_no_more_at_once(service: Service, tenant: Tenant) -> None:
    switch = await switch_of(service)
    switch.on()
    created = await service.client.post(
        "/v1/api-keys", headers=tenant.admin_headers, json={"name": "k", "scopes": ["admin"]}
    )
    assert created.status_code == 201, created.text
    headers = {"X-API-Key": created.json()["key"], **JSON}
    ok = await service.client.post("/v1/events", headers=headers, content=orjson.dumps(VALID))
    assert ok.status_code == 201  # the key's lookup is cached from here on
    revoked = await service.client.delete(
        f"/v1/api-keys/{created.json()['id']}", headers=tenant.admin_headers
    )
    assert revoked.status_code == 204
    refused = await service.client.post("/v1/events", headers=headers, content=orjson.dumps(VALID))
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_api_key"


async def test_a_changed_publish_limit_applies_at_once(tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    clock = FrozenClock(start_ms=now - now % 60_000)
    async with running_service(make_settings(tmp_path), clock) as service:
        acme = await service.tenant("acme")
        token = service.ctx.tokens.mint_platform_admin(now=time.time(), ttl=600)

        async def publish_limit(limit: int) -> None:
            changed = await service.client.put(
                f"/v1/tenants/{acme.id}/limits",
                headers={"Authorization": f"Bearer {token}"},
                json={"publishPerMinute": limit},
            )
            assert changed.status_code == 200, changed.text

        request = {"headers": {**acme.key_headers, **JSON}, "content": orjson.dumps(VALID)}
        await publish_limit(100)
        for _ in range(3):  # the effective limits are worked out once, then kept
            assert (await service.client.post("/v1/events", **request)).status_code == 201
        await publish_limit(4)
        assert (await service.client.post("/v1/events", **request)).status_code == 201
        assert (await service.client.post("/v1/events", **request)).status_code == 429


async def _cut_off(
    service: Service,
    headers: dict[str, str],
    body: bytes,
    caplog: pytest.LogCaptureFixture,
    sent: int | None = None,
) -> tuple[list[int], list[int]]:
    """A publish whose client goes away after `sent` bytes of its body (half by default; with
    `Content-Length` unless `headers` say chunked), straight to the app: the statuses the app
    sent (to nobody) and the ones the access log wrote."""
    transport = service.client._transport
    assert isinstance(transport, httpx.ASGITransport)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/events",
        "raw_path": b"/v1/events",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("cf.test", 80),
    }
    if "Transfer-Encoding" not in headers:
        scope["headers"].append((b"content-length", str(len(body)).encode()))
    messages = [
        {
            "type": "http.request",
            "body": body[: len(body) // 2 if sent is None else sent],
            "more_body": True,
        },
        {"type": "http.disconnect"},  # and again, however often asked
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if len(messages) > 1 else messages[0]

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="causeflow.access"):
        await transport.app(scope, receive, send)
    logged = [r.status for r in caplog.records if r.name == "causeflow.access"]  # type: ignore[attr-defined]
    return statuses, logged


async def test_a_body_cut_off_by_the_client_is_answered_like_the_route(
    service: Service, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """A client gone halfway through its body is no server error: the route answers (and logs)
    400, and so does the direct handler, which hands the request on."""
    switch = await switch_of(service)
    request = (service, {**tenant.key_headers, **JSON}, orjson.dumps(VALID), caplog)
    switch.off()
    route = await _cut_off(*request)
    switch.on()
    direct = await _cut_off(*request)
    assert route == ([400], [400])
    assert direct == route
    assert switch.handed_on == 1


async def test_a_chunked_body_cut_off_by_the_client_is_not_published(
    service: Service, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """A chunked body whose client went away before its last chunk is no request: even when
    what came is a whole JSON document, nothing is published (the route answers 400)."""
    chunked = {**tenant.key_headers, **JSON, "Transfer-Encoding": "chunked"}
    body = orjson.dumps(VALID)
    assert await _cut_off(service, chunked, body, caplog, sent=len(body)) == ([400], [400])
    page = await service.client.get("/v1/events", headers=tenant.key_headers)
    assert [e["event"] for e in page.json()["items"]] == ["tenant.created"]


async def test_a_body_cut_off_with_an_idempotency_key_is_not_published(
    service: Service, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """The `Idempotency-Key` middleware reads the body itself: one cut off by the client (what
    came a whole JSON document, the declared length not reached) is no request either."""
    headers = {**tenant.key_headers, **JSON, "Idempotency-Key": "cut"}
    body = orjson.dumps(VALID) + b"    "  # the client goes away before the trailing spaces
    assert await _cut_off(service, headers, body, caplog, sent=len(body) - 4) == ([400], [400])
    page = await service.client.get("/v1/events", headers=tenant.key_headers)
    assert [e["event"] for e in page.json()["items"]] == ["tenant.created"]
