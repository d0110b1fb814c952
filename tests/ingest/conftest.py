"""Inbound fixtures: the service trusting a local stand-in for SNS, and that stand-in.

A trustme CA issues a certificate for 127.0.0.1; the service is configured (through its real
settings) to fetch SNS certificates only from that host and to trust that CA, so SNS
deliveries are verified end to end over real https on loopback.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme
from aiohttp import web

from causeflow.clock import ms_to_rfc3339
from tests.ingest.test_sns import SigningIdentity
from tests.support.inproc import Service, make_settings, running_service

SNS_HOST = "127.0.0.1"
SNS_HOST_PATTERN = r"^127\.0\.0\.1$"
CERT_PATH = "/SimpleNotificationService-test.pem"


@dataclass
class TlsFiles:
    ca: trustme.CA
    ca_file: str


@pytest.fixture(scope="session")
def sns_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("sns-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return TlsFiles(ca, str(path))


@pytest.fixture(scope="session")
def sns_identity() -> SigningIdentity:
    return SigningIdentity()


def inbound_settings_overrides(sns_tls: TlsFiles) -> dict[str, Any]:
    return {
        "sns_cert_host_pattern": SNS_HOST_PATTERN,
        "sns_ca_file": sns_tls.ca_file,
        "sns_timeout_seconds": 2.0,
    }


@pytest.fixture
async def service(tmp_path: Path, database_url: str, sns_tls: TlsFiles) -> AsyncIterator[Service]:
    settings = make_settings(tmp_path, database_url, **inbound_settings_overrides(sns_tls))
    async with running_service(settings) as svc:
        yield svc


@dataclass
class FakeSns:
    """The local SNS: serves the signing certificate and answers SubscribeURL confirmations."""

    port: int
    identity: SigningIdentity
    requests: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"https://{SNS_HOST}:{self.port}{path}"

    def sign(
        self,
        doc: dict[str, Any],
        *,
        now_ms: int,
        identity: SigningIdentity | None = None,
        cert_url: str | None = None,
        version: str = "2",
    ) -> bytes:
        """The envelope re-stamped at `now_ms`, pointed at this server and signed."""
        doc = dict(doc, Timestamp=ms_to_rfc3339(now_ms))
        if "SubscribeURL" in doc:
            doc["SubscribeURL"] = self.url("/confirm?Action=ConfirmSubscription&Token=t")
        signer = identity or self.identity
        return orjson.dumps(signer.sign(doc, version, cert_url=cert_url or self.url(CERT_PATH)))


@asynccontextmanager
async def serving_fake_sns(sns_tls: TlsFiles, identity: SigningIdentity) -> AsyncIterator[FakeSns]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    sns_tls.ca.issue_cert(SNS_HOST).configure_cert(context)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((SNS_HOST, 0))
    state = FakeSns(port=sock.getsockname()[1], identity=identity)

    async def handle(request: web.Request) -> web.StreamResponse:
        state.requests.append(request.path)
        if request.path == CERT_PATH:
            return web.Response(body=state.identity.cert_pem)
        if request.path == "/confirm":
            return web.Response(text="<ConfirmSubscriptionResponse/>", content_type="text/xml")
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=context).start()
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def fake_sns(sns_tls: TlsFiles, sns_identity: SigningIdentity) -> AsyncIterator[FakeSns]:
    async with serving_fake_sns(sns_tls, sns_identity) as state:
        yield state
