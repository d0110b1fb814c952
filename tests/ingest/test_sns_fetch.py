"""SNS certificate fetching and subscription confirmation against a real https server.

A trustme CA issues a certificate for `sns.us-east-1.amazonaws.com`; an aiohttp server on
127.0.0.1 serves the SNS signing certificate and a SubscribeURL; the fetcher resolves the AWS
host name to 127.0.0.1 through an injected resolver (nothing touches /etc/hosts or the network).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from causeflow.ingest.providers.base import InvalidSignature
from causeflow.ingest.providers.registry import PROVIDERS
from causeflow.ingest.sns import CertFetcher, confirm_subscription, parse_envelope, verify_sns
from tests.ingest.test_sns import TOPIC, SigningIdentity, load_envelope

pytestmark = pytest.mark.integration

HOST = "sns.us-east-1.amazonaws.com"
CERT_PATH = "/SimpleNotificationService-0123456789abcdef.pem"
# Fetchers here time out after 0.5 s; one that ignored its timeout would still be waiting for
# the silent peer when this much longer deadline ends the test.
GIVE_UP_SECONDS = 30


class LoopbackResolver(AbstractResolver):
    """Resolves every name to 127.0.0.1: the AWS host name reaches the local test server."""

    def __init__(self) -> None:
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


@dataclass
class FakeSns:
    """The local stand-in for SNS: its request log and its address."""

    port: int
    identity: SigningIdentity
    ca_file: str
    requests: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = HOST) -> str:
        return f"https://{host}:{self.port}{path}"

    def signed(self, fixture: str, version: str = "1", path: str = CERT_PATH) -> dict[str, Any]:
        doc = load_envelope(fixture)
        if "SubscribeURL" in doc:
            doc["SubscribeURL"] = self.url("/confirm?Action=ConfirmSubscription&Token=abc")
        return self.identity.sign(doc, version, cert_url=self.url(path))


@pytest.fixture
async def sns(tmp_path: Path) -> AsyncIterator[FakeSns]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    state = FakeSns(port=sock.getsockname()[1], identity=SigningIdentity(), ca_file=str(ca_file))

    async def handle(request: web.Request) -> web.StreamResponse:
        state.requests.append(request.path_qs)
        if request.path == CERT_PATH:
            return web.Response(body=state.identity.cert_pem, content_type="application/x-pem-file")
        if request.path == "/confirm":
            return web.Response(text="<ConfirmSubscriptionResponse/>", content_type="text/xml")
        if request.path == "/hang":
            await state.release.wait()
            return web.Response(text="too late")
        if request.path == "/garbage.pem":
            return web.Response(text="not a certificate")
        if request.path == "/huge.pem":
            return web.Response(body=b"-" * 200_000)
        if request.path == "/redirect.pem":
            raise web.HTTPFound(CERT_PATH)
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=server_context).start()
    try:
        yield state
    finally:
        state.release.set()
        await runner.cleanup()


@pytest.fixture
async def fetcher(sns: FakeSns) -> AsyncIterator[CertFetcher]:
    async with CertFetcher(ca_file=sns.ca_file, resolver=LoopbackResolver(), timeout=2.0) as f:
        yield f


@pytest.mark.parametrize("version", ["1", "2"])
async def test_signed_notification_verifies_and_the_certificate_is_cached(
    sns: FakeSns, fetcher: CertFetcher, version: str
) -> None:
    envelope = parse_envelope(sns.signed("alarm.txt", version))
    await verify_sns(envelope, fetcher, [TOPIC])
    await verify_sns(envelope, fetcher, [TOPIC])
    assert sns.requests == [CERT_PATH]


async def test_the_cloudwatch_flow_end_to_end(sns: FakeSns, fetcher: CertFetcher) -> None:
    body = orjson.dumps(sns.signed("ok.txt", "2"))
    parsed = PROVIDERS["cloudwatch"].parse({}, body)
    assert parsed.sns is not None
    await verify_sns(parsed.sns.envelope, fetcher, None)
    assert [(a.status, a.fingerprint) for a in parsed.alerts] == [
        ("resolved", "arn:aws:cloudwatch:us-east-1:123456789012:alarm:checkout-5xx-rate")
    ]


async def test_forged_signature_is_refused(sns: FakeSns, fetcher: CertFetcher) -> None:
    forged = SigningIdentity().sign(load_envelope("alarm.txt"), "2", cert_url=sns.url(CERT_PATH))
    with pytest.raises(InvalidSignature, match="does not match"):
        await verify_sns(parse_envelope(forged), fetcher, [TOPIC])


async def test_tampered_message_is_refused(sns: FakeSns, fetcher: CertFetcher) -> None:
    signed = sns.signed("alarm.txt", "1")
    tampered = {**signed, "Message": signed["Message"].replace('"ALARM"', '"OK"')}
    assert tampered["Message"] != signed["Message"]
    with pytest.raises(InvalidSignature):
        await verify_sns(parse_envelope(tampered), fetcher, [TOPIC])


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://evil.example:{port}" + CERT_PATH,
        "http://" + HOST + ":{port}" + CERT_PATH,
        "https://" + HOST + ".evil.example:{port}" + CERT_PATH,
    ],
    ids=["foreign-host", "plain-http", "suffixed-host"],
)
async def test_certificate_urls_off_the_allowed_hosts_are_never_fetched(
    sns: FakeSns, fetcher: CertFetcher, cert_url: str
) -> None:
    signed = sns.signed("alarm.txt")
    envelope = parse_envelope(
        sns.identity.sign(signed, "1", cert_url=cert_url.format(port=sns.port))
    )
    with pytest.raises(InvalidSignature):
        await verify_sns(envelope, fetcher, [TOPIC])
    assert sns.requests == []


async def test_unknown_topic_is_refused(sns: FakeSns, fetcher: CertFetcher) -> None:
    envelope = parse_envelope(sns.signed("alarm.txt"))
    with pytest.raises(InvalidSignature, match="not allowed"):
        await verify_sns(envelope, fetcher, ["arn:aws:sns:eu-west-1:123456789012:elsewhere"])


async def test_a_hanging_server_times_out_as_invalid_signature(sns: FakeSns) -> None:
    envelope = parse_envelope(sns.signed("alarm.txt", path="/hang"))
    async with CertFetcher(ca_file=sns.ca_file, resolver=LoopbackResolver(), timeout=0.5) as slow:
        # the server answers only once released (teardown): the fetcher's own timeout ends it
        with pytest.raises(InvalidSignature, match="failed"):
            async with asyncio.timeout(GIVE_UP_SECONDS):
                await verify_sns(envelope, slow, [TOPIC])
    assert sns.requests == ["/hang"]


async def test_a_silent_tls_peer_times_out_as_invalid_signature(sns: FakeSns) -> None:
    held: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    envelope = parse_envelope(
        sns.identity.sign(load_envelope("alarm.txt"), "1", cert_url=f"https://{HOST}:{port}/c.pem")
    )
    try:
        async with CertFetcher(ca_file=sns.ca_file, resolver=LoopbackResolver(), timeout=0.5) as f:
            with pytest.raises(InvalidSignature):
                async with asyncio.timeout(GIVE_UP_SECONDS):
                    await verify_sns(envelope, f, None)
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("path", ["/missing.pem", "/garbage.pem", "/huge.pem", "/redirect.pem"])
async def test_bad_certificate_responses_are_invalid_signatures(
    sns: FakeSns, fetcher: CertFetcher, path: str
) -> None:
    envelope = parse_envelope(sns.signed("alarm.txt", path=path))
    with pytest.raises(InvalidSignature):
        await verify_sns(envelope, fetcher, None)
    assert sns.requests == [path]  # a redirect is not followed


async def test_an_untrusted_server_certificate_is_refused(sns: FakeSns) -> None:
    envelope = parse_envelope(sns.signed("alarm.txt"))
    async with CertFetcher(resolver=LoopbackResolver(), timeout=2.0) as system_trust_only:
        with pytest.raises(InvalidSignature):
            await verify_sns(envelope, system_trust_only, None)
    assert sns.requests == []  # the TLS handshake failed before any request


async def test_confirmation_is_fetched_only_after_verification(
    sns: FakeSns, fetcher: CertFetcher
) -> None:
    signed = sns.signed("subscription_confirmation.txt", "2")
    forged = parse_envelope({**signed, "SubscribeURL": sns.url("/confirm?Token=forged")})
    with pytest.raises(InvalidSignature):
        await confirm_subscription(forged, fetcher, [TOPIC])
    assert [r for r in sns.requests if r.startswith("/confirm")] == []

    await confirm_subscription(parse_envelope(signed), fetcher, [TOPIC])
    assert sns.requests == [CERT_PATH, "/confirm?Action=ConfirmSubscription&Token=abc"]


async def test_confirmation_for_an_unknown_topic_is_not_sent(
    sns: FakeSns, fetcher: CertFetcher
) -> None:
    envelope = parse_envelope(sns.signed("subscription_confirmation.txt"))
    with pytest.raises(InvalidSignature):
        await confirm_subscription(envelope, fetcher, ["arn:aws:sns:us-east-1:123456789012:other"])
    assert sns.requests == []


async def test_confirmation_url_follows_the_host_rule(sns: FakeSns, fetcher: CertFetcher) -> None:
    doc = load_envelope("subscription_confirmation.txt")
    doc["SubscribeURL"] = f"https://evil.example:{sns.port}/confirm"
    envelope = parse_envelope(sns.identity.sign(doc, "1", cert_url=sns.url(CERT_PATH)))
    with pytest.raises(InvalidSignature, match="not an allowed SNS host"):
        await confirm_subscription(envelope, fetcher, None)
    assert sns.requests == [CERT_PATH]


class ManualClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_cached_certificate_is_fetched_again_after_its_lifetime(sns: FakeSns) -> None:
    clock = ManualClock()
    async with CertFetcher(
        ca_file=sns.ca_file, resolver=LoopbackResolver(), cache_seconds=60, clock=clock
    ) as fetcher:
        await verify_sns(parse_envelope(sns.signed("alarm.txt")), fetcher, [TOPIC])
        # the certificate at the URL is replaced: the cached one is used until it ages out
        sns.identity = SigningIdentity()
        renewed = parse_envelope(sns.signed("alarm.txt"))
        clock.now += 59
        with pytest.raises(InvalidSignature, match="does not match"):
            await verify_sns(renewed, fetcher, [TOPIC])
        assert sns.requests == [CERT_PATH]
        clock.now += 1
        await verify_sns(renewed, fetcher, [TOPIC])
        assert sns.requests == [CERT_PATH, CERT_PATH]


async def test_the_cache_holds_a_bounded_number_of_certificates(sns: FakeSns) -> None:
    paths = [f"{CERT_PATH}?n={n}" for n in range(3)]
    async with CertFetcher(ca_file=sns.ca_file, resolver=LoopbackResolver(), cache_size=2) as f:
        for path in paths:
            await verify_sns(parse_envelope(sns.signed("alarm.txt", path=path)), f, None)
        await verify_sns(parse_envelope(sns.signed("alarm.txt", path=paths[2])), f, None)
        assert sns.requests == paths  # the newest two are kept
        await verify_sns(parse_envelope(sns.signed("alarm.txt", path=paths[0])), f, None)
        assert sns.requests == [*paths, paths[0]]  # the oldest was dropped


@pytest.mark.parametrize("which", ["expired", "not_yet_valid"])
async def test_a_certificate_outside_its_dates_is_refused(
    sns: FakeSns, fetcher: CertFetcher, which: str
) -> None:
    now = datetime.now(UTC)
    if which == "expired":
        dates = {"not_before": now - timedelta(days=30), "not_after": now - timedelta(minutes=1)}
    else:
        dates = {"not_before": now + timedelta(minutes=5), "not_after": now + timedelta(days=30)}
    sns.identity = SigningIdentity(**dates)
    envelope = parse_envelope(sns.signed("alarm.txt", "2"))
    with pytest.raises(InvalidSignature, match="expired" if which == "expired" else "not valid"):
        await verify_sns(envelope, fetcher, [TOPIC])


async def test_validity_is_checked_at_each_verification_not_at_the_fetch(
    sns: FakeSns, fetcher: CertFetcher
) -> None:
    envelope = parse_envelope(sns.signed("alarm.txt"))
    await verify_sns(envelope, fetcher, [TOPIC])
    later = sns.identity.cert.not_valid_after_utc + timedelta(seconds=1)
    with pytest.raises(InvalidSignature, match="expired"):
        await verify_sns(envelope, fetcher, [TOPIC], now=later)
    earlier = sns.identity.cert.not_valid_before_utc - timedelta(seconds=1)
    with pytest.raises(InvalidSignature, match="not valid yet"):
        await verify_sns(envelope, fetcher, [TOPIC], now=earlier)
    assert sns.requests == [CERT_PATH]  # from the cache each time
