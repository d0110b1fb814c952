"""Deliveries through a real HTTP proxy (tinyproxy, a process of its own): plain http, https
tunnelled with CONNECT, proxy credentials, SSRF vetting of the final target before anything
reaches the proxy, and the engine sending with a client certificate and OAuth2 through it."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme

from causeflow.webhook.proxy import parse_proxy
from causeflow.webhook.sender import Sender
from causeflow.webhook.ssrf import parse_allow_cidrs
from tests.support.tinyproxy import VIA_NAME, Tinyproxy

from .delivery_support import (
    add_deliveries,
    add_event,
    bare_context,
    running_engine,
    wait_until_settled,
)
from .egress_support import Hooks, TokenEndpoint, client_pem, egress_sub, oauth, server_context

pytestmark = pytest.mark.process

LOOPBACK = parse_allow_cidrs("127.0.0.0/8")


class Names:
    """An injected DNS: receiver names of the test, answered from a table."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        return self.table[host]


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Tinyproxy]:
    with Tinyproxy(tmp_path / "proxy") as tp:
        yield tp


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    h = await Hooks().start()
    yield h
    await h.stop()


def sender_for(proxy_url: str, names: Names, **kwargs: object) -> Sender:
    options: dict[str, object] = {"allow_cidrs": LOOPBACK, "allow_http": True, **kwargs}
    return Sender(proxy=parse_proxy(proxy_url), resolver_fn=names, **options)  # type: ignore[arg-type]


async def test_a_delivery_leaves_through_the_proxy_pinned_to_the_vetted_address(
    proxy: Tinyproxy, hooks: Hooks
) -> None:
    names = Names({"hooks.example": ["127.0.0.1"]})
    async with sender_for(proxy.url, names) as sender:
        result = await sender.send(
            hooks.url("hooks.example"), b'{"a":1}', {"Content-Type": "application/json"}
        )
    assert result.ok, result
    [seen] = hooks.seen
    assert VIA_NAME in seen.headers["Via"]  # it came through the proxy
    # a proxy rebuilds Host from the absolute URI of a forwarded plain-http request, so the
    # receiver sees the address (https keeps the name: it is tunnelled, see below)
    assert seen.headers["Host"] == f"127.0.0.1:{hooks.port}"
    assert seen.body == b'{"a":1}'
    # the proxy was asked for the vetted address, never for the name (it cannot resolve it)
    assert proxy.requests() == [f"POST http://127.0.0.1:{hooks.port}/hook HTTP/1.1"]
    assert names.asked == ["hooks.example"]


async def test_https_tunnels_with_connect_and_checks_the_receivers_name(
    proxy: Tinyproxy,
) -> None:
    ca = trustme.CA()
    hooks = await Hooks(server_context(ca, "hooks.example")).start()
    client = ssl.create_default_context()
    ca.configure_trust(client)
    try:
        names = Names({"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
        async with sender_for(proxy.url, names, ssl_context=client) as sender:
            good = await sender.send(hooks.url("hooks.example"), b"{}", {})
            # the same address under a name the certificate does not carry: refused by TLS
            bad = await sender.send(hooks.url("other.example"), b"{}", {})
    finally:
        await hooks.stop()
    assert good.ok, good
    assert len(hooks.seen) == 1 and hooks.seen[0].headers["Host"] == f"hooks.example:{hooks.port}"
    assert bad.error is not None and bad.error.startswith("tls_error"), bad
    assert f"CONNECT 127.0.0.1:{hooks.port} HTTP/1.1" in proxy.requests()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://metadata.example/hook",  # a name that resolves to the metadata address
        "http://private.example/hook",  # a name that resolves to a private address
    ],
)
async def test_a_refused_target_never_reaches_the_proxy(proxy: Tinyproxy, url: str) -> None:
    names = Names({"metadata.example": ["169.254.169.254"], "private.example": ["10.0.0.7"]})
    async with sender_for(proxy.url, names) as sender:
        result = await sender.send(url, b"{}", {})
    assert result.error == "ssrf_blocked"
    assert result.status is None
    assert proxy.requests() == []


async def test_the_proxy_may_be_on_loopback_when_receivers_may_not(proxy: Tinyproxy) -> None:
    """The allow-list judges receivers only: 127.0.0.2 is allowed, the proxy's 127.0.0.1 not."""
    hooks = await Hooks(host="127.0.0.2").start()
    refused = await Hooks().start()
    try:
        names = Names({})
        only_two = parse_allow_cidrs("127.0.0.2/32")
        async with sender_for(proxy.url, names, allow_cidrs=only_two) as sender:
            ok = await sender.send(hooks.url(), b"{}", {})
            blocked = await sender.send(refused.url(), b"{}", {})
    finally:
        await hooks.stop()
        await refused.stop()
    assert ok.ok, ok
    assert blocked.error == "ssrf_blocked"
    assert refused.seen == []
    assert proxy.requests() == [f"POST http://127.0.0.2:{hooks.port}/hook HTTP/1.1"]


async def test_proxy_credentials(tmp_path: Path, hooks: Hooks) -> None:
    with Tinyproxy(tmp_path / "auth-proxy", user="relay", password="s3cret") as proxy:
        names = Names({})
        async with sender_for(proxy.url, names) as sender:
            ok = await sender.send(hooks.url(), b"{}", {})
        wrong = proxy.url.replace("s3cret", "wrong")
        async with sender_for(wrong, names) as sender:
            refused = await sender.send(hooks.url(), b"{}", {})
    assert ok.ok, ok
    # tinyproxy answers a bad Proxy-Authorization with 401 (others with 407)
    assert refused.status in (401, 407) and not refused.ok
    assert len(hooks.seen) == 1
    assert "Proxy-Authorization" not in hooks.seen[0].headers  # the proxy consumed it


async def test_connect_refused_by_the_proxy_is_a_proxy_error(tmp_path: Path) -> None:
    ca = trustme.CA()
    hooks = await Hooks(server_context(ca, "127.0.0.1")).start()
    try:
        with Tinyproxy(tmp_path / "auth-proxy", user="relay", password="s3cret") as proxy:
            wrong = proxy.url.replace("s3cret", "wrong")
            async with sender_for(wrong, Names({})) as sender:
                result = await sender.send(hooks.url(), b"{}", {})
    finally:
        await hooks.stop()
    assert result.error is not None and result.error.startswith("proxy_error"), result
    assert hooks.seen == []


async def test_client_certificate_and_oauth2_through_the_proxy(
    tmp_path: Path, database_url: str
) -> None:
    server_ca, client_ca = trustme.CA(), trustme.CA()
    ca_file = tmp_path / "ca.pem"
    server_ca.cert_pem.write_to_path(str(ca_file))
    hooks = await Hooks(server_context(server_ca, "127.0.0.1", client_ca=client_ca)).start()
    tokens = await TokenEndpoint().start()
    try:
        with Tinyproxy(tmp_path / "proxy") as proxy:
            async with bare_context(
                tmp_path, database_url, webhook_ca_file=str(ca_file), webhook_proxy=proxy.url
            ) as ctx:
                sub = await egress_sub(
                    ctx, hooks.url(), tls=client_pem(client_ca), auth=oauth(tokens)
                )
                [msg] = await add_deliveries(ctx, sub, await add_event(ctx))
                async with running_engine(ctx):
                    [row] = await wait_until_settled(ctx, [msg])
            requests = proxy.requests()
    finally:
        await hooks.stop()
        await tokens.stop()
    assert row.status == "succeeded", row.last_error
    assert hooks.seen[0].peer_cert is not None
    assert f"POST http://127.0.0.1:{tokens.port}/token HTTP/1.1" in requests
    assert f"CONNECT 127.0.0.1:{hooks.port} HTTP/1.1" in requests
