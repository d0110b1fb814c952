"""A stream stands only while the credential behind it does: the API key it was opened with or
its ticket was minted from, the dashboard session, the minting token's expiry. Checked when a
stream opens (a ticket replays nothing once its credential is gone) and at every ping, across
processes on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from causeflow.app import build_context
from causeflow.db.migrate import migrate
from causeflow.settings import Settings
from causeflow.tenant.service import provision
from tests.stream.live import FAST, STREAM, LiveService, live_service, next_event, until_ended
from tests.support.clock import FrozenClock
from tests.support.dashboard import csrf_token
from tests.support.inproc import make_settings, running_service
from tests.support.keys import pg_key_settings
from tests.support.pg import fresh_database, require_pg
from tests.support.processes import Deployment
from tests.support.sse import SseHttpError, SseStream


async def _post_json(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: Any = None
) -> Any:
    async with session.post(url, json=body, headers=headers) as response:
        assert response.status == 201, await response.text()
        return await response.json()


async def _refused(
    url: str,
    headers: dict[str, str],
    last_event_id: str | None = None,
    **params: str,
) -> SseHttpError:
    """Open a stream that must be refused, on a connection of its own (a pooled one may be
    a stream's that the server has just closed)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(SseHttpError) as caught:
            async with SseStream(session, url, headers, last_event_id, params):
                pass
    return caught.value


@pytest.mark.integration
async def test_a_revoked_key_ends_its_streams_and_its_tickets_open_nothing(
    live: LiveService,
) -> None:
    svc = live
    acme = await svc.tenant()
    created = await _post_json(
        svc.session,
        svc.base_url + "/v1/api-keys",
        acme.admin_headers,
        {"name": "reader", "scopes": ["events:read"]},
    )
    key_headers = {"X-API-Key": created["key"]}
    tickets_url = svc.base_url + "/v1/notifications/stream-tickets"
    ticket = (await _post_json(svc.session, tickets_url, key_headers))["ticket"]
    [first, _] = await svc.publish(acme, 2)
    async with (
        svc.stream(headers=key_headers) as by_key,
        svc.stream(headers={}, token=ticket) as by_ticket,
        svc.stream(headers={}, last_event_id=first.id, token=ticket) as resumed,
    ):
        for stream in (by_key, by_ticket):
            assert (await stream.next(timeout=5)).event == "ping"
        assert (await next_event(resumed)).id != first.id  # the replay works while it stands
        async with svc.session.delete(
            svc.base_url + f"/v1/api-keys/{created['id']}", headers=acme.admin_headers
        ) as response:
            assert response.status == 204
        for stream in (by_key, by_ticket, resumed):
            await until_ended(stream, timeout=5)
            assert "credential revoked" in stream.parser.comments
    # The ticket opens nothing any more, and replays no history.
    for last_event_id in (None, first.id):
        refused = await _refused(svc.stream_url, {}, last_event_id, token=ticket)
        assert refused.status == 401
        assert '"error":"credential_revoked"' in refused.body
    assert (await _refused(svc.stream_url, key_headers)).status == 401


async def _sign_in(svc: LiveService, credential: str) -> str:
    """Sign in to the dashboard over HTTP; the session cookie's value."""
    async with svc.session.get(svc.base_url + "/ui/login") as response:
        form = await response.text()
        login_cookie = response.cookies["cf_login_csrf"].value
    async with svc.session.post(
        svc.base_url + "/ui/login",
        data={"csrf_token": csrf_token(form), "credential": credential, "next": "/ui"},
        headers={"Cookie": f"cf_login_csrf={login_cookie}"},
        allow_redirects=False,
    ) as response:
        assert response.status == 303, await response.text()
        return response.cookies["cf_session"].value


async def _sign_out(svc: LiveService, cookie: dict[str, str]) -> None:
    async with svc.session.get(svc.base_url + "/ui/incidents", headers=cookie) as response:
        page = await response.text()
    async with svc.session.post(
        svc.base_url + "/ui/logout",
        data={"csrf_token": csrf_token(page)},
        headers=cookie,
        allow_redirects=False,
    ) as response:
        assert response.status == 303


@pytest.mark.integration
@pytest.mark.parametrize("signed_in_with", ["jwt", "api_key"])
async def test_signing_out_ends_the_sessions_streams_and_tickets(
    live: LiveService, signed_in_with: str
) -> None:
    svc = live
    acme = await svc.tenant()
    session_id = await _sign_in(svc, acme.admin_token if signed_in_with == "jwt" else acme.api_key)
    cookie = {"Cookie": f"cf_session={session_id}"}
    # A ticket minted through the session names it (the ticket route takes no cookie, so it
    # is minted here, as a caller holding the session's principal would get it).
    principal = await svc.ctx.session_lookup(session_id)  # type: ignore[misc]
    ticket = svc.ctx.tokens.mint_ticket(principal, now=svc.ctx.clock.now(), ttl=600)
    async with (
        svc.stream(headers=cookie) as by_cookie,
        svc.stream(headers={}, token=ticket) as by_ticket,
        svc.stream(acme) as unrelated,
    ):
        for stream in (by_cookie, by_ticket, unrelated):
            assert (await stream.next(timeout=5)).event == "ping"
        await _sign_out(svc, cookie)
        for stream in (by_cookie, by_ticket):
            await until_ended(stream, timeout=5)
            assert "session ended" in stream.parser.comments
        [event] = await svc.publish(acme)
        assert (await next_event(unrelated)).id == event.id  # the credential itself stands
    assert (await _refused(svc.stream_url, cookie)).status == 401
    refused = await _refused(svc.stream_url, {}, token=ticket)
    assert refused.status == 401
    assert '"error":"session_ended"' in refused.body


@pytest.fixture
async def frozen(tmp_path: Path) -> AsyncIterator[tuple[LiveService, FrozenClock]]:
    clock = FrozenClock()
    async with live_service(make_settings(tmp_path, **FAST), clock) as svc:
        yield svc, clock


@pytest.mark.integration
async def test_a_ticket_minted_with_a_jwt_ends_when_the_jwt_does(
    frozen: tuple[LiveService, FrozenClock],
) -> None:
    svc, clock = frozen
    acme = await svc.tenant()
    token = svc.ctx.tokens.mint(tenant_id=acme.id, role="member", now=clock.now(), ttl=60)
    ticket = (
        await _post_json(
            svc.session,
            svc.base_url + "/v1/notifications/stream-tickets",
            {"Authorization": f"Bearer {token}"},
        )
    )["ticket"]
    async with svc.stream(headers={}, token=ticket) as stream:
        assert (await stream.next(timeout=5)).event == "ping"
        clock.advance(61)  # well within the ticket's own lifetime, past the token's
        await until_ended(stream, timeout=5)
        assert "credential expired" in stream.parser.comments
    refused = await _refused(svc.stream_url, {}, token=ticket)
    assert refused.status == 401
    assert '"error":"token_expired"' in refused.body


@pytest.mark.process
async def test_a_revocation_in_one_process_ends_streams_in_another(tmp_path: Path) -> None:
    require_pg()
    ping = {"CAUSEFLOW_SSE_PING_SECONDS": "0.2"}
    with fresh_database() as url, Deployment(tmp_path / "a", url, env=ping) as deployment:
        settings = Settings(data_dir=deployment.data_dir, database_url=url, **pg_key_settings(url))
        await migrate(settings)
        ctx = await build_context(settings)
        try:
            acme = (await provision(ctx, name="acme")).as_json()
        finally:
            await ctx.db.dispose()
        node_a = deployment.add_server(start=False)
        node_a.start(wait=False)
        # The other process: this one, serving the same database.
        async with running_service(make_settings(tmp_path / "b", url)) as node_b:
            admin = {"X-API-Key": acme["apiKey"]}
            created = await node_b.client.post(
                "/v1/api-keys", json={"name": "reader", "scopes": ["events:read"]}, headers=admin
            )
            key = created.json()
            key_headers = {"X-API-Key": key["key"]}
            await asyncio.to_thread(node_a.wait_ready, 30)
            stream_url = node_a.base_url + STREAM
            async with aiohttp.ClientSession() as session:
                ticket = (
                    await _post_json(
                        session, node_a.base_url + "/v1/notifications/stream-tickets", key_headers
                    )
                )["ticket"]
                async with (
                    SseStream(session, stream_url, key_headers) as by_key,
                    SseStream(session, stream_url, {}, params={"token": ticket}) as by_ticket,
                ):
                    for stream in (by_key, by_ticket):
                        assert (await stream.next(timeout=10)).event == "ping"
                    revoked = await node_b.client.delete(f"/v1/api-keys/{key['id']}", headers=admin)
                    assert revoked.status_code == 204
                    for stream in (by_key, by_ticket):
                        await until_ended(stream, timeout=5)
                        assert "credential revoked" in stream.parser.comments
                refused = await _refused(stream_url, {}, token=ticket)
                assert refused.status == 401
                assert '"error":"credential_revoked"' in refused.body
