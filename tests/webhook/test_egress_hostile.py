"""Egress under a hostile or unlucky token endpoint: slow or failing fetches shared by the
deliveries waiting for them, the whole attempt (token and delivery) inside the request timeout,
and access tokens that could not be a header value refused as an auth error."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp import web

from causeflow.webhook.deliveryauth import DeliveryAuth
from causeflow.webhook.egress import Egress
from causeflow.webhook.oauth import FAILURE_HOLD_SECONDS, OAuthTokens
from causeflow.webhook.proxy import parse_proxy
from causeflow.webhook.sender import Sender
from causeflow.webhook.ssrf import parse_allow_cidrs
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

LOOPBACK = parse_allow_cidrs("127.0.0.0/8")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Sub:
    """The fields of a subscription the egress reads."""

    id: str
    url: str
    auth: DeliveryAuth | None
    client_tls: None = None


class Server:
    """A loopback server: `/token` and `/hook` answered by the test's handlers."""

    def __init__(self, token: Handler, hook: Handler | None = None) -> None:
        self.token, self.hook = token, hook
        self.fetches = 0
        self.hooks: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _token(self, request: web.Request) -> web.StreamResponse:
        self.fetches += 1
        return await self.token(request)

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        self.hooks.append(dict(request.headers))
        if self.hook is not None:
            return await self.hook(request)
        return web.Response(status=204)

    async def start(self) -> Server:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/hook", self._hook)
        self.runner = web.AppRunner(app, shutdown_timeout=0.2, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]
        return self

    def sub(self, sub_id: str = "sub_1") -> Sub:
        auth = DeliveryAuth(
            type="oauth2",
            token_url=f"http://127.0.0.1:{self.port}/token",
            client_id="client-1",
            client_secret="client-secret-1",
        )
        return Sub(sub_id, f"http://127.0.0.1:{self.port}/hook", auth)


@pytest.fixture
async def servers() -> AsyncIterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.runner is not None:
            await server.runner.cleanup()


async def egress_of(total_timeout: float = 15.0) -> Egress:
    sender = Sender(allow_cidrs=LOOPBACK, allow_http=True, total_timeout=total_timeout)
    await sender.start()
    return Egress(sender)


async def test_deliveries_waiting_for_a_failing_fetch_share_its_outcome(
    servers: list[Server],
) -> None:
    """Five deliveries at once, the token endpoint slow and failing: one fetch, not five in a
    row (each waiting for the one before, the last five fetch times late)."""

    async def slow_failure(_request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.4)
        return web.json_response({"error": "server_error"}, status=500)

    server = await Server(slow_failure).start()
    servers.append(server)
    egress = await egress_of()
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(egress.send(server.sub(), b"{}", {}) for _ in range(5)))
        elapsed = time.monotonic() - started
    finally:
        await egress.sender.close()
    assert [r.error for r in results] == ["auth_error: token endpoint answered HTTP 500"] * 5
    assert server.fetches == 1
    assert elapsed < 1.2, elapsed
    assert server.hooks == []


async def test_a_failed_fetch_is_held_briefly_then_fetched_again(
    servers: list[Server],
) -> None:
    """A slow failure of the token endpoint stays the answer for as long as it took (at most
    `FAILURE_HOLD_SECONDS`): the deliveries in between fail at once with its error instead of
    each holding a slot of the receiver's host (shared with other tenants' subscriptions) for
    up to the request timeout. A quick failure is held as briefly (retries stay retries)."""
    answers = iter([500, 200])
    now = [1000.0]

    async def slow_then_ok(_request: web.Request) -> web.StreamResponse:
        status = next(answers)
        await asyncio.sleep(0.3)
        now[0] += FAILURE_HOLD_SECONDS + 5  # as slow as it gets (the clock of the tokens)
        if status != 200:
            return web.json_response({"error": "server_error"}, status=status)
        return web.json_response({"access_token": "tok-ok", "token_type": "Bearer"})

    server = await Server(slow_then_ok).start()
    servers.append(server)
    egress = await egress_of()
    egress.tokens = OAuthTokens(egress.sender.send, clock=lambda: now[0])
    try:
        failed = await egress.send(server.sub(), b"{}", {})
        started = time.monotonic()
        held = await egress.send(server.sub(), b"{}", {})
        held_for = time.monotonic() - started
        now[0] += FAILURE_HOLD_SECONDS + 0.1
        ok = await egress.send(server.sub(), b"{}", {})
    finally:
        await egress.sender.close()
    assert failed.error == "auth_error: token endpoint answered HTTP 500"
    assert held.error == failed.error
    assert held_for < 0.2, held_for
    assert ok.ok, ok
    assert server.fetches == 2
    assert server.hooks[0]["Authorization"] == "Bearer tok-ok"


async def test_a_changed_auth_is_not_held_by_an_earlier_failure(servers: list[Server]) -> None:
    answers = iter([500, 200])

    async def then_ok(_request: web.Request) -> web.StreamResponse:
        if next(answers) != 200:
            return web.json_response({"error": "server_error"}, status=500)
        return web.json_response({"access_token": "tok-ok", "token_type": "Bearer"})

    server = await Server(then_ok).start()
    servers.append(server)
    egress = await egress_of()
    try:
        sub = server.sub()
        failed = await egress.send(sub, b"{}", {})
        assert sub.auth is not None
        changed = Sub(sub.id, sub.url, dataclasses.replace(sub.auth, client_secret="rotated"))
        ok = await egress.send(changed, b"{}", {})
    finally:
        await egress.sender.close()
    assert failed.error is not None and failed.error.startswith("auth_error")
    assert ok.ok, ok
    assert server.fetches == 2


async def test_the_token_fetch_and_the_delivery_share_the_request_timeout(
    servers: list[Server],
) -> None:
    """The timeout bounds the whole attempt: the lease and the shutdown grace are sized by
    it, so a slow token fetch followed by a slow receiver may not take twice as long."""

    async def slow_token(_request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.7)
        return web.json_response({"access_token": "tok-1", "token_type": "Bearer"})

    async def slow_hook(_request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.7)
        return web.Response(status=204)

    server = await Server(slow_token, slow_hook).start()
    servers.append(server)
    egress = await egress_of(total_timeout=1.0)
    try:
        started = time.monotonic()
        result = await egress.send(server.sub(), b"{}", {})
        elapsed = time.monotonic() - started
    finally:
        await egress.sender.close()
    assert result.error == "timeout", result
    assert elapsed < 1.3, elapsed


async def test_waiting_for_another_deliverys_fetch_counts_against_the_timeout(
    servers: list[Server],
) -> None:
    async def slow_token(_request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(3.0)
        return web.json_response({"access_token": "tok-1", "token_type": "Bearer"})

    server = await Server(slow_token).start()
    servers.append(server)
    egress = await egress_of(total_timeout=1.0)
    try:
        first = asyncio.ensure_future(egress.send(server.sub(), b"{}", {}))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        second = await egress.send(server.sub(), b"{}", {})
        elapsed = time.monotonic() - started
        await first
    finally:
        await egress.sender.close()
    assert second.error is not None and second.error.endswith("timeout"), second
    assert elapsed < 1.3, elapsed


@pytest.mark.parametrize(
    "token",
    ["tok\r\nX-Injected: 1", "tök-ünicode", "two words", "tab\there", ""],
)
async def test_an_access_token_that_is_no_header_value_is_an_auth_error(
    servers: list[Server], token: str
) -> None:
    async def odd(_request: web.Request) -> web.StreamResponse:
        return web.json_response({"access_token": token, "token_type": "Bearer"})

    server = await Server(odd).start()
    servers.append(server)
    egress = await egress_of()
    try:
        result = await egress.send(server.sub(), b"{}", {})
    finally:
        await egress.sender.close()
    assert result.error is not None and result.error.startswith("auth_error:"), result
    assert server.hooks == []  # nothing reached the receiver
    if token:
        assert token not in result.error


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_proxy_that_is_down_is_a_proxy_error_without_its_credentials(
    scheme: str,
) -> None:
    proxy = parse_proxy(f"http://relay:proxy-pw-77d1@127.0.0.1:{free_port()}")
    async with Sender(allow_cidrs=LOOPBACK, allow_http=True, proxy=proxy) as sender:
        result = await sender.send(f"{scheme}://127.0.0.1:9/hook", b"{}", {})
    assert result.error is not None and result.error.startswith("proxy_error: "), result
    assert "proxy-pw-77d1" not in result.error and "relay" not in result.error
