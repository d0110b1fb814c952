"""The delivery HTTP client against real loopback receivers (aiohttp.web and raw sockets)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
import trustme
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from causeflow.webhook.sender import MAX_BODY_BYTES, Sender
from causeflow.webhook.signing import delivery_headers, generate_secret, verify_causeflow
from causeflow.webhook.ssrf import SsrfBlocked, VettingResolver, parse_allow_cidrs

LOOPBACK_ONLY = parse_allow_cidrs("127.0.0.1/32")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Answers:
    """An injected DNS whose answers are scripted per lookup (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        return self.answers[min(len(self.asked), len(self.answers)) - 1]


class Receiver:
    """A loopback aiohttp.web server that records every request it gets."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.handler = handler
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.path, dict(request.headers), body))
        if self.handler is None:
            return web.Response(status=204)
        return await self.handler(request)

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class ConnectionCounter:
    """A raw TCP listener that only counts the connections it accepts."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def start(self) -> ConnectionCounter:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def servers() -> AsyncIterator[list[Receiver | ConnectionCounter]]:
    started: list[Receiver | ConnectionCounter] = []
    yield started
    for server in started:
        await server.stop()


@pytest.fixture
async def release() -> AsyncIterator[asyncio.Event]:
    """Set at teardown so receivers that hang on purpose can finish."""
    event = asyncio.Event()
    yield event
    event.set()


async def receiver(
    servers: list[Receiver | ConnectionCounter],
    handler: Handler | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Receiver:
    started = await Receiver(handler).start(ssl_context)
    servers.append(started)
    return started


async def counter(servers: list[Receiver | ConnectionCounter]) -> ConnectionCounter:
    started = await ConnectionCounter().start()
    servers.append(started)
    return started


def closing(status: int = 204, **kwargs: object) -> Handler:
    """A handler that answers and closes the connection, so the next send needs a new one."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.Response(status=status, **kwargs)  # type: ignore[arg-type]
        response.force_close()
        return response

    return handle


@pytest.mark.integration
async def test_delivers_a_signed_body_through_the_injected_resolver(
    servers: list[Receiver | ConnectionCounter],
) -> None:
    got = await receiver(servers, closing(200, body=b'{"ok":true}'))
    answers = Answers(["127.0.0.1"])
    secret = generate_secret()
    body = orjson.dumps({"id": "evt_1", "event": "incident.created", "data": {}})
    headers = delivery_headers(
        event_type="incident.created",
        msg_id="msg_1",
        timestamp=int(time.time()),
        body=body,
        secrets=[secret],
        version="0.1.0",
        extra={"Authorization": "Bearer receiver-token"},
    )
    async with Sender(allow_cidrs=LOOPBACK_ONLY, allow_http=True, resolver_fn=answers) as sender:
        result = await sender.send(f"http://hooks.example.test:{got.port}/in", body, headers)
    assert result.ok, result
    assert (result.status, result.body, result.error) == (200, b'{"ok":true}', None)
    assert result.latency_ms > 0
    assert answers.asked == ["hooks.example.test"]
    [(path, seen, received)] = got.requests
    assert path == "/in" and received == body
    assert Webhook(secret).verify(received, seen) == orjson.loads(body)
    assert verify_causeflow(secret, received, seen["X-CauseFlow-Signature"])
    assert seen["Authorization"] == "Bearer receiver-token"
    assert seen["User-Agent"] == "CauseFlow-Webhooks/0.1.0"


@pytest.mark.integration
async def test_name_resolving_to_a_private_address_is_blocked_before_connecting(
    servers: list[Receiver | ConnectionCounter],
) -> None:
    target = await counter(servers)
    answers = Answers(["127.0.0.1"])
    async with Sender(allow_http=True, resolver_fn=answers) as sender:
        result = await sender.send(f"http://hooks.example.test:{target.port}/", b"{}", {})
    assert (result.status, result.error, result.ok) == (None, "ssrf_blocked", False)
    assert answers.asked == ["hooks.example.test"]
    assert target.connections == 0


@pytest.mark.integration
async def test_one_refused_answer_among_good_ones_blocks_the_attempt(
    servers: list[Receiver | ConnectionCounter],
) -> None:
    target = await counter(servers)
    answers = Answers(["127.0.0.1", "127.0.0.2"])
    async with Sender(allow_cidrs=LOOPBACK_ONLY, allow_http=True, resolver_fn=answers) as sender:
        result = await sender.send(f"http://hooks.example.test:{target.port}/", b"{}", {})
    assert result.error == "ssrf_blocked"
    assert target.connections == 0


@pytest.mark.integration
@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0x7f.0.0.1", "[::ffff:127.0.0.1]"])
async def test_literal_private_addresses_are_blocked(
    servers: list[Receiver | ConnectionCounter], host: str
) -> None:
    target = await counter(servers)
    async with Sender(allow_http=True, resolver_fn=Answers(["127.0.0.1"])) as sender:
        result = await sender.send(f"http://{host}:{target.port}/", b"{}", {})
    assert result.error == "ssrf_blocked"
    assert target.connections == 0


@pytest.mark.integration
async def test_allowed_literal_in_another_spelling_is_delivered(
    servers: list[Receiver | ConnectionCounter],
) -> None:
    got = await receiver(servers)
    async with Sender(allow_cidrs=LOOPBACK_ONLY, allow_http=True) as sender:
        result = await sender.send(f"http://2130706433:{got.port}/x", b"{}", {})
    assert result.ok, result
    assert len(got.requests) == 1


@pytest.mark.integration
async def test_an_answer_that_changes_is_caught_on_the_second_lookup(
    servers: list[Receiver | ConnectionCounter],
) -> None:
    got = await receiver(servers, closing())
    answers = Answers(["127.0.0.1"], ["127.0.0.2"])
    async with Sender(
        allow_cidrs=LOOPBACK_ONLY, allow_http=True, resolver_fn=answers, dns_cache_seconds=0
    ) as sender:
        url = f"http://rebind.example.test:{got.port}/"
        first = await sender.send(url, b"{}", {})
        second = await sender.send(url, b"{}", {})
    assert first.ok, first
    assert (second.status, second.error) == (None, "ssrf_blocked")
    assert answers.asked == ["rebind.example.test", "rebind.example.test"]
    assert len(got.requests) == 1


@pytest.mark.integration
async def test_a_vetted_answer_is_reused_within_the_dns_cache_window(
    servers: list[Receiver | ConnectionCounter],
) -> None:
    got = await receiver(servers, closing())
    answers = Answers(["127.0.0.1"], ["127.0.0.2"])
    async with Sender(
        allow_cidrs=LOOPBACK_ONLY, allow_http=True, resolver_fn=answers, dns_cache_seconds=60
    ) as sender:
        url = f"http://cached.example.test:{got.port}/"
        results = [await sender.send(url, b"{}", {}) for _ in range(3)]
    assert all(r.ok for r in results), results
    # Three fresh connections (the receiver closes each), one lookup: the vetted address.
    assert answers.asked == ["cached.example.test"]
    assert len(got.requests) == 3


@pytest.mark.integration
@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_not_followed(
    servers: list[Receiver | ConnectionCounter], status: int
) -> None:
    inner = await receiver(servers)

    async def redirect(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": f"http://127.0.0.1:{inner.port}/"})

    outer = await receiver(servers, redirect)
    async with Sender(allow_cidrs=LOOPBACK_ONLY, allow_http=True) as sender:
        result = await sender.send(f"http://127.0.0.1:{outer.port}/", b"{}", {})
    assert (result.status, result.ok, result.error) == (status, False, "redirect")
    assert len(outer.requests) == 1
    assert inner.requests == []


@pytest.mark.integration
async def test_error_statuses_and_retry_after_are_reported(
    servers: list[Receiver | ConnectionCounter],
) -> None:
    async def busy(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503, text="try later", headers={"Retry-After": "7"})

    got = await receiver(servers, busy)
    async with Sender(allow_cidrs=LOOPBACK_ONLY, allow_http=True) as sender:
        result = await sender.send(f"http://127.0.0.1:{got.port}/", b"{}", {})
    assert (result.status, result.ok, result.error) == (503, False, None)
    assert result.retry_after == "7"
    assert result.body == b"try later"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, hostname: str, seen_sni: list[str | None]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(hostname).configure_cert(context)

    def record(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        seen_sni.append(name)

    context.sni_callback = record  # type: ignore[assignment]
    return context


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.mark.integration
async def test_https_to_a_pinned_address_verifies_the_hostname(
    servers: list[Receiver | ConnectionCounter], ca: trustme.CA
) -> None:
    sni: list[str | None] = []
    got = await receiver(servers, ssl_context=server_context(ca, "hooks.example.test", sni))
    answers = Answers(["127.0.0.1"])
    async with Sender(
        allow_cidrs=LOOPBACK_ONLY, resolver_fn=answers, ssl_context=client_context(ca)
    ) as sender:
        result = await sender.send(f"https://hooks.example.test:{got.port}/tls", b"{}", {})
    assert result.ok, result
    assert sni == ["hooks.example.test"]
    assert [path for path, _, _ in got.requests] == ["/tls"]


@pytest.mark.integration
async def test_https_with_a_certificate_for_another_name_fails(
    servers: list[Receiver | ConnectionCounter], ca: trustme.CA
) -> None:
    got = await receiver(servers, ssl_context=server_context(ca, "other.example.test", []))
    async with Sender(
        allow_cidrs=LOOPBACK_ONLY,
        resolver_fn=Answers(["127.0.0.1"]),
        ssl_context=client_context(ca),
    ) as sender:
        result = await sender.send(f"https://hooks.example.test:{got.port}/", b"{}", {})
    assert result.status is None and not result.ok
    assert result.error is not None and result.error.startswith("tls_error"), result.error
    assert got.requests == []


@pytest.mark.integration
async def test_https_with_an_untrusted_issuer_fails(
    servers: list[Receiver | ConnectionCounter], ca: trustme.CA
) -> None:
    got = await receiver(servers, ssl_context=server_context(ca, "hooks.example.test", []))
    async with Sender(allow_cidrs=LOOPBACK_ONLY, resolver_fn=Answers(["127.0.0.1"])) as sender:
        result = await sender.send(f"https://hooks.example.test:{got.port}/", b"{}", {})
    assert result.error is not None and result.error.startswith("tls_error"), result.error
    assert got.requests == []


@pytest.mark.integration
async def test_a_hanging_receiver_hits_the_total_timeout(
    servers: list[Receiver | ConnectionCounter], release: asyncio.Event
) -> None:
    async def hang(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=200)

    got = await receiver(servers, hang)
    async with Sender(
        allow_cidrs=LOOPBACK_ONLY, allow_http=True, connect_timeout=0.5, total_timeout=0.5
    ) as sender:
        result = await sender.send(f"http://127.0.0.1:{got.port}/", b"{}", {})
    assert (result.status, result.error, result.ok) == (None, "timeout", False)
    assert 400 <= result.latency_ms < 5000
    assert len(got.requests) == 1


@pytest.mark.integration
async def test_a_large_answer_is_cut_at_4_kib(servers: list[Receiver | ConnectionCounter]) -> None:
    payload = bytes(i % 251 for i in range(1024 * 1024))

    async def large(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, body=payload)

    got = await receiver(servers, large)
    async with Sender(allow_cidrs=LOOPBACK_ONLY, allow_http=True) as sender:
        result = await sender.send(f"http://127.0.0.1:{got.port}/", b"{}", {})
        # The connection was not left in a bad state: the next attempt works.
        again = await sender.send(f"http://127.0.0.1:{got.port}/", b"{}", {})
    assert result.ok and again.ok
    assert MAX_BODY_BYTES == 4096
    assert result.body == payload[:4096]


@pytest.mark.integration
async def test_connection_refused_is_an_error_not_an_exception() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with Sender(allow_cidrs=LOOPBACK_ONLY, allow_http=True) as sender:
        result = await sender.send(f"http://127.0.0.1:{port}/", b"{}", {})
    assert result.status is None and not result.ok
    assert result.error is not None and result.error.startswith("connect_error"), result.error


@pytest.mark.integration
async def test_plain_http_needs_the_setting(servers: list[Receiver | ConnectionCounter]) -> None:
    target = await counter(servers)
    async with Sender(allow_cidrs=LOOPBACK_ONLY) as sender:
        result = await sender.send(f"http://127.0.0.1:{target.port}/", b"{}", {})
    assert result.error is not None and result.error.startswith("invalid_url"), result.error
    assert target.connections == 0


@pytest.mark.unit
async def test_send_requires_start() -> None:
    with pytest.raises(RuntimeError):
        await Sender().send("https://hooks.example.com/", b"{}", {})


@pytest.mark.integration
async def test_a_hanging_dns_lookup_counts_against_the_total_timeout(
    servers: list[Receiver | ConnectionCounter], release: asyncio.Event
) -> None:
    target = await counter(servers)
    asked: list[str] = []

    async def slow_dns(host: str) -> list[str]:
        asked.append(host)
        await release.wait()
        return ["127.0.0.1"]

    async with Sender(
        allow_cidrs=LOOPBACK_ONLY, allow_http=True, resolver_fn=slow_dns, total_timeout=0.3
    ) as sender:
        result = await sender.send(f"http://slow-dns.example.test:{target.port}/", b"{}", {})
    assert (result.status, result.error) == (None, "timeout")
    assert asked == ["slow-dns.example.test"]
    assert target.connections == 0


@pytest.mark.integration
async def test_the_system_resolver_is_vetted_by_default(
    servers: list[Receiver | ConnectionCounter],
) -> None:
    got = await receiver(servers)
    url = f"http://localhost:{got.port}/"
    async with Sender(allow_cidrs=parse_allow_cidrs("127.0.0.0/8,::1/128"), allow_http=True) as s:
        allowed = await s.send(url, b"{}", {})
    async with Sender(allow_http=True) as s:
        refused = await s.send(url, b"{}", {})
    assert allowed.ok, allowed
    assert refused.error == "ssrf_blocked"
    assert len(got.requests) == 1
    # Past the name check too: the system resolver's answers for localhost are refused.
    with pytest.raises(SsrfBlocked):
        await VettingResolver().resolve("localhost", got.port, socket.AF_UNSPEC)


@pytest.mark.integration
async def test_a_body_that_stalls_after_the_status_keeps_the_status(
    servers: list[Receiver | ConnectionCounter], release: asyncio.Event
) -> None:
    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=202)
        await response.prepare(request)
        await response.write(b"accepted")
        await release.wait()
        return response

    got = await receiver(servers, stall)
    async with Sender(allow_cidrs=LOOPBACK_ONLY, allow_http=True, total_timeout=0.5) as sender:
        result = await sender.send(f"http://127.0.0.1:{got.port}/", b"{}", {})
        # The attempt's timeout did not leak out: the caller can still await.
        await asyncio.sleep(0.01)
    assert (result.status, result.body, result.error) == (202, b"accepted", None)
    assert result.ok
    assert result.latency_ms >= 400
