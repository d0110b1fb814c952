"""How streams end: credential expiry and revocation, slow consumers, shutdown."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from tests.stream.live import (
    FAST,
    STREAM,
    LiveService,
    live_service,
    next_event,
    next_events,
    until_ended,
)
from tests.support.clock import FrozenClock
from tests.support.inproc import make_settings
from tests.support.sse import SseHttpError

pytestmark = pytest.mark.integration


@pytest.fixture
async def frozen(tmp_path: Path) -> tuple[LiveService, FrozenClock]:  # type: ignore[misc]
    clock = FrozenClock()
    async with live_service(make_settings(tmp_path, **FAST), clock) as svc:
        yield svc, clock


async def test_a_stream_ends_when_its_jwt_expires(frozen: tuple[LiveService, FrozenClock]) -> None:
    svc, clock = frozen
    acme = await svc.tenant()
    token = svc.ctx.tokens.mint(tenant_id=acme.id, role="member", now=clock.now(), ttl=30)
    headers = {"Authorization": f"Bearer {token}"}
    async with svc.stream(headers=headers) as stream:
        assert (await stream.next(timeout=5)).event == "ping"  # alive while the token is valid
        [event] = await svc.publish(acme)
        assert (await next_event(stream)).id == event.id
        clock.advance(31)
        await until_ended(stream, timeout=5)
        assert "credential expired" in stream.parser.comments
    with pytest.raises(SseHttpError) as caught:
        async with svc.stream(headers=headers):
            pass
    assert caught.value.status == 401


async def test_an_expired_ticket_is_refused_and_ends_its_stream(
    frozen: tuple[LiveService, FrozenClock],
) -> None:
    svc, clock = frozen
    acme = await svc.tenant()
    async with svc.session.post(
        svc.base_url + "/v1/notifications/stream-tickets", headers=acme.admin_headers
    ) as response:
        ticket = (await response.json())["ticket"]
    async with svc.stream(headers={}, token=ticket) as stream:
        await stream.next(timeout=5)
        clock.advance(svc.ctx.settings.sse_ticket_ttl_seconds + 1)
        await until_ended(stream, timeout=5)
    with pytest.raises(SseHttpError) as caught:
        async with svc.stream(headers={}, token=ticket):
            pass
    assert caught.value.status == 401
    assert '"error":"token_expired"' in caught.value.body


async def test_revoking_a_key_ends_its_streams_and_its_tickets(live_sqlite: LiveService) -> None:
    svc = live_sqlite
    acme = await svc.tenant()
    async with svc.session.post(
        svc.base_url + "/v1/api-keys",
        json={"name": "dashboard", "scopes": ["events:read"]},
        headers=acme.admin_headers,
    ) as response:
        created = await response.json()
    key_headers = {"X-API-Key": created["key"]}
    async with svc.session.post(
        svc.base_url + "/v1/notifications/stream-tickets", headers=key_headers
    ) as response:
        ticket = (await response.json())["ticket"]
    async with (
        svc.stream(headers=key_headers) as by_key,
        svc.stream(headers={}, token=ticket) as by_ticket,
        svc.stream(acme) as unrelated,
    ):
        for s in (by_key, by_ticket, unrelated):
            await s.next(timeout=5)
        async with svc.session.delete(
            svc.base_url + f"/v1/api-keys/{created['id']}", headers=acme.admin_headers
        ) as response:
            assert response.status == 204
        await until_ended(by_key, timeout=5)
        await until_ended(by_ticket, timeout=5)
        assert "credential revoked" in by_key.parser.comments
        [event] = await svc.publish(acme)
        assert (await next_event(unrelated)).id == event.id  # other keys' streams go on
    with pytest.raises(SseHttpError) as caught:
        async with svc.stream(headers=key_headers):
            pass
    assert caught.value.status == 401


async def test_a_slow_consumer_is_cut_off_and_the_others_keep_up(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, sse_buffer_events=8, **FAST)
    async with live_service(settings) as svc:
        acme = await svc.tenant()
        # A client that never reads, with a tiny receive window so the server's side fills up.
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", int(svc.base_url.rsplit(":", 1)[1])))
        slow.sendall(
            f"GET {STREAM} HTTP/1.1\r\nHost: x\r\nX-API-Key: {acme.api_key}\r\n\r\n".encode()
        )
        try:
            async with svc.stream(acme) as fast:
                await fast.next(timeout=5)
                async with asyncio.timeout(5):
                    while len(svc.hub.connections()) < 2:
                        await asyncio.sleep(0.01)
                big = {
                    "incidentId": "inc_01M86BHTRK6CQ643DZVMXXQKFB",
                    "title": "x" * 20000,
                    "severity": "high",
                    "status": "open",
                    "source": "custom",
                }
                published = []
                for _ in range(40):
                    published += await svc.publish(acme, 5, per_tx=5, data=big)
                got = await next_events(fast, len(published), timeout=20)
                assert [e.id for e in got] == [e.id for e in published]
                # The slow one was dropped: only the fast stream is left in the hub.
                assert len(svc.hub.connections()) == 1
            # What it can still read ends abruptly, well short of what was published.
            received = await asyncio.to_thread(_read_until_closed, slow)
            assert received.startswith(b"HTTP/1.1 200 OK")
            assert not received.endswith(b"0\r\n\r\n")
            assert len(received) < len(published) * 20000
        finally:
            slow.close()


def _read_until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    data = bytearray()
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return bytes(data)


async def test_shutdown_ends_streams_cleanly_and_new_ones_right_after_the_preamble(
    live_sqlite: LiveService,
) -> None:
    live = live_sqlite
    acme = await live.tenant()
    async with live.stream(acme) as one, live.stream(acme, events="incident.created") as two:
        await one.next(timeout=5)
        await two.next(timeout=5)
        live.hub.shutdown()
        for stream in (one, two):
            await until_ended(stream, timeout=5)  # a clean end of the response, no error
            assert "server shutting down; reconnect" in stream.parser.comments
    async with live.stream(acme) as late:
        assert [e for e in await until_ended(late, timeout=5) if e.event != "ping"] == []
        assert late.parser.retry == 3000
