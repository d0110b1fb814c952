"""The stream is answered by `stream.front.StreamFront`, under the gateway and before the
framework's routing, and answers exactly as the FastAPI route does.

The route's answers come from a second uvicorn server in the same process serving the same
application (same context, hub and store) with that layer left out (`route_stack`), so each
case is asked of both and the answers compared: refusals of the credential (none, malformed,
unknown, without the stream's permission, a platform admin, a tenant that does not exist, a
revoked key), the filters' and parameters' validation, the tenant's stream cap and request
budget, and what a stream sends (head, preamble, resume with `Last-Event-ID` or
`?lastEventId=`, a reset).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from causeflow.stream.front import StreamFront
from tests.stream.live import FAST, STREAM, LiveService, live_service, next_events, serving
from tests.support.inproc import Tenant, make_settings
from tests.support.sse import SseEvent, SseHttpError, SseStream

pytestmark = pytest.mark.integration

# Headers that differ between two requests whatever answers them.
VARYING = {"date", "x-request-id", "x-ratelimit-remaining", "x-ratelimit-reset"}
# Modules of the framework's request handling: an open stream must hold none of their frames.
FRAMEWORK = (
    "fastapi/routing.py",
    "fastapi/dependencies/",
    "fastapi/middleware/asyncexitstack.py",
    "starlette/routing.py",
    "starlette/middleware/exceptions.py",
    "starlette/_exception_handler.py",
)


def route_stack(app: Any) -> Any:
    """The application's ASGI stack without `StreamFront`: the FastAPI route answers."""
    kept = app.user_middleware
    app.user_middleware = [m for m in kept if m.cls is not StreamFront]
    try:
        stack = app.build_middleware_stack()
    finally:
        app.user_middleware = kept

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = app  # as the application's own `__call__` does
        await stack(scope, receive, send)

    return asgi


@pytest.fixture
async def both(tmp_path: Path) -> AsyncIterator[tuple[LiveService, str]]:
    """The service (its stream answered by `StreamFront`) and the route's server's base URL."""
    settings = make_settings(tmp_path, sse_max_streams_per_tenant=2, **FAST)
    async with live_service(settings) as svc, serving(route_stack(svc.app)) as (route_url, _):
        yield svc, route_url


async def answer(
    base_url: str, headers: dict[str, str], params: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    """A refused stream's status, headers (those that do not vary) and body."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(base_url + STREAM, headers=headers, params=params or {}) as response,
    ):
        assert response.status != 200, "the stream was expected to be refused"
        assert "x-request-id" in response.headers
        kept = {k.lower(): v for k, v in response.headers.items() if k.lower() not in VARYING}
        return response.status, kept, await response.text()


async def assert_same_answer(
    svc: LiveService, route_url: str, headers: dict[str, str], **params: str
) -> tuple[int, dict[str, str], str]:
    fast = await answer(svc.base_url, headers, params)
    routed = await answer(route_url, headers, params)
    assert fast == routed
    return fast


async def test_refused_credentials_are_answered_alike(both: tuple[LiveService, str]) -> None:
    svc, route_url = both
    acme = await svc.tenant("acme")
    now = time.time()
    tokens = svc.ctx.tokens
    cases: list[tuple[dict[str, str], int, str]] = [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Basic abc"}, 401, "invalid_token"),
        ({"X-API-Key": "cflo_" + "0" * 64}, 401, "invalid_api_key"),
        ({"X-API-Key": acme.ingest_key}, 403, "forbidden"),
        ({"Authorization": f"Bearer {tokens.mint_platform_admin(now=now, ttl=60)}"}, 403, ""),
        (
            {
                "Authorization": "Bearer "
                + tokens.mint(tenant_id="ten_x", role="admin", now=now, ttl=60)
            },
            401,
            "invalid_token",
        ),
    ]
    for headers, status, code in cases:
        got_status, _, body = await assert_same_answer(svc, route_url, headers)
        assert got_status == status, (headers, body)
        assert f'"error":"{code}' in body, (headers, body)


async def test_a_revoked_key_is_refused_alike(both: tuple[LiveService, str]) -> None:
    svc, route_url = both
    acme = await svc.tenant("acme")
    async with svc.session.post(
        svc.base_url + "/v1/api-keys",
        json={"name": "reader", "scopes": ["events:read"]},
        headers=acme.admin_headers,
    ) as created:
        assert created.status == 201, await created.text()
        key = await created.json()
    reader = {"X-API-Key": key["key"]}
    # a ticket minted from the key, then the key revoked: the ticket opens nothing
    async with svc.session.post(
        svc.base_url + "/v1/notifications/stream-tickets", headers=reader
    ) as minted:
        ticket = (await minted.json())["ticket"]
    async with svc.session.delete(
        svc.base_url + f"/v1/api-keys/{key['id']}", headers=acme.admin_headers
    ) as revoked:
        assert revoked.status == 204
    status, _, body = await assert_same_answer(svc, route_url, {}, token=ticket)
    assert status == 401 and '"error":"credential_revoked"' in body, body


async def test_parameters_are_validated_alike(both: tuple[LiveService, str]) -> None:
    svc, route_url = both
    acme = await svc.tenant("acme")
    key = acme.key_headers
    cases: list[tuple[dict[str, str], dict[str, str], int]] = [
        (key, {"events": "incident.created,no.such"}, 422),  # answered by the fast path
        (key, {"events": "x" * 2001}, 422),  # by the route's validation
        (key, {"incidentId": "i" * 65}, 422),
        (key, {"lastEventId": "e" * 65}, 422),
        ({**key, "Last-Event-ID": "e" * 65}, {}, 422),
        ({}, {"events": "x" * 2001}, 401),  # the credential is checked first
        ({}, {"events": "no.such"}, 401),
    ]
    for headers, params, status in cases:
        got, _, body = await assert_same_answer(svc, route_url, headers, **params)
        assert got == status, (params, body)


async def test_the_tenants_cap_is_answered_alike(both: tuple[LiveService, str]) -> None:
    svc, route_url = both
    acme, globex = await svc.tenant("acme"), await svc.tenant("globex")
    # one stream through each path: both count against the tenant's cap of 2
    async with svc.stream(acme) as one, _stream(svc, route_url, acme) as two:
        await one.next(timeout=5)
        await two.next(timeout=5)
        assert len(svc.hub.feeds[acme.id].members) == 2
        status, headers, body = await assert_same_answer(svc, route_url, acme.key_headers)
        assert status == 429 and headers["retry-after"] == "5", (headers, body)
        assert '"error":"too_many_streams"' in body and '"limit":2' in body, body
        async with svc.stream(globex) as other:  # another tenant has its own
            await other.next(timeout=5)


def _stream(
    svc: LiveService,
    base_url: str,
    tenant: Tenant,
    last_event_id: str | None = None,
    headers: dict[str, str] | None = None,
    **params: str,
) -> SseStream:
    url = base_url + STREAM
    return SseStream(svc.session, url, headers or tenant.key_headers, last_event_id, params)


async def _first(
    svc: LiveService, base_url: str, tenant: Tenant, count: int, **kwargs: Any
) -> tuple[dict[str, str], int | None, list[SseEvent]]:
    async with _stream(svc, base_url, tenant, **kwargs) as stream:
        events = await next_events(stream, count)
        kept = {
            k.lower(): v for k, v in stream.response.headers.items() if k.lower() not in VARYING
        }
        return kept, stream.parser.retry, events


async def test_streams_and_resumes_are_served_alike(both: tuple[LiveService, str]) -> None:
    svc, route_url = both
    acme, globex = await svc.tenant("acme"), await svc.tenant("globex")
    ids = [e.id for e in await svc.publish(acme, 6)]
    await svc.publish(globex, 3)  # another tenant's events reach neither
    cases: list[tuple[int, dict[str, Any]]] = [
        (4, {"last_event_id": ids[1]}),  # Last-Event-ID
        (3, {"lastEventId": ids[2]}),  # ?lastEventId=
        (3, {"last_event_id": ids[2], "lastEventId": ids[0]}),  # the header wins
        (2, {"last_event_id": ids[3], "events": "incident.created"}),
        (1, {"last_event_id": "evt_gone"}),  # a reset, then live
    ]
    for count, kwargs in cases:
        fast = await _first(svc, svc.base_url, acme, count, **kwargs)
        routed = await _first(svc, route_url, acme, count, **kwargs)
        assert fast == routed, kwargs
        headers, retry, events = fast
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["cache-control"] == "no-cache" and "x-ratelimit-limit" in headers
        assert retry == svc.ctx.settings.sse_retry_ms
        if kwargs.get("last_event_id") == "evt_gone":
            assert events[0].event == "reset"
        else:
            assert [e.id for e in events] == ids[len(ids) - count :]


def _held_modules(task: asyncio.Task[Any]) -> list[str]:
    """The source files of every coroutine a task is suspended in, outermost first."""
    files: list[str] = []
    frame: Any = task.get_coro()
    while frame is not None:
        code = getattr(frame, "cr_code", None) or getattr(frame, "gi_code", None)
        if code is None:
            break
        files.append(code.co_filename.replace("\\", "/"))
        frame = getattr(frame, "cr_await", None) or getattr(frame, "gi_yieldfrom", None)
    return files


def _stream_tasks() -> list[list[str]]:
    found = [_held_modules(t) for t in asyncio.all_tasks()]
    return [files for files in found if any(f.endswith("stream/session.py") for f in files)]


async def test_an_open_stream_holds_no_frame_of_the_frameworks_routing(
    both: tuple[LiveService, str],
) -> None:
    svc, route_url = both
    acme = await svc.tenant("acme")
    async with svc.stream(acme) as stream:
        await stream.next(timeout=5)
        (held,) = _stream_tasks()
        assert not [f for f in held if any(f.endswith(m) or m in f for m in FRAMEWORK)], held
        assert any(f.endswith("stream/front.py") for f in held), held
    async with asyncio.timeout(5):
        while svc.hub.connections():
            await asyncio.sleep(0.02)
    # the route's stack does hold them: the check above can see them
    async with _stream(svc, route_url, acme) as routed:
        await routed.next(timeout=5)
        (held,) = _stream_tasks()
        assert [f for f in held if any(m in f for m in FRAMEWORK)], held


async def test_a_stream_refused_before_its_head_is_not_left_registered(tmp_path: Path) -> None:
    """A stream refused for its filters leaves nothing in the hub (the fast path raises before
    the hub registers it), and the tenant can still open its full cap."""
    settings = make_settings(tmp_path, sse_max_streams_per_tenant=1, **FAST)
    async with live_service(settings) as svc:
        acme = await svc.tenant("acme")
        for _ in range(3):
            with pytest.raises(SseHttpError) as caught:
                async with svc.stream(acme, events="no.such"):
                    pass
            assert caught.value.status == 422
        assert not svc.hub.connections()
        async with svc.stream(acme) as one:
            await one.next(timeout=5)


async def test_the_request_budget_is_spent_and_answered_alike(tmp_path: Path) -> None:
    """The stream spends its tenant's request budget on either path (the gateway runs before
    both), and once it is spent both answer the gateway's 429."""
    settings = make_settings(tmp_path, rate_limit_per_minute=2, **FAST)
    async with live_service(settings) as svc, serving(route_stack(svc.app)) as (route_url, _):
        acme = await svc.tenant("acme")
        async with svc.stream(acme) as one, _stream(svc, route_url, acme) as two:
            await one.next(timeout=5)
            await two.next(timeout=5)
            assert one.response.headers["X-RateLimit-Remaining"] in ("0", "1")
        fast = await answer(svc.base_url, acme.key_headers)
        routed = await answer(route_url, acme.key_headers)
        for status, headers, body in (fast, routed):
            assert status == 429 and '"error":"rate_limit_exceeded"' in body, body
            assert "retry-after" in headers and headers["x-ratelimit-limit"] == "2"
        assert fast[2] == routed[2]
        assert set(fast[1]) == set(routed[1])
