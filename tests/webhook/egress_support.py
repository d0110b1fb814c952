"""Loopback servers of the egress tests: a receiver (plain or TLS, optionally requiring a client
certificate) that records requests, an OAuth2 token endpoint that counts its fetches, and PEM
material made with trustme and cryptography."""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass, field
from typing import Any

import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from causeflow.context import AppContext
from causeflow.jsonutil import dumps_str
from causeflow.webhook.clienttls import ClientTls
from causeflow.webhook.deliveryauth import DeliveryAuth

from .delivery_support import add_subscription, set_subscription


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    peer_cert: dict[str, Any] | None
    authorizations: list[str] = field(default_factory=list)  # every Authorization line


class Hooks:
    """A receiver on 127.0.0.1: records each request; `status` is the answer."""

    def __init__(
        self, ssl_context: ssl.SSLContext | None = None, status: int = 204, host: str = "127.0.0.1"
    ) -> None:
        self.host = host
        self.ssl_context = ssl_context
        self.status = status
        self.seen: list[Seen] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        ssl_obj = transport.get_extra_info("ssl_object") if transport else None
        peer = ssl_obj.getpeercert() if ssl_obj is not None else None
        body = await request.read()
        auths = request.headers.getall("Authorization", [])
        self.seen.append(Seen(request.path, dict(request.headers), body, peer, auths))
        return web.Response(status=self.status)

    async def start(self) -> Hooks:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def url(self, host: str | None = None, path: str = "/hook") -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host or self.host}:{self.port}{path}"


@dataclass
class TokenEndpoint:
    """`POST /token`: client credentials in, `{"access_token": "tok-N", ...}` out."""

    expires_in: int | None = 3600
    status: int = 200
    fetches: int = 0
    forms: list[dict[str, str]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    async def _token(self, request: web.Request) -> web.Response:
        self.fetches += 1
        self.forms.append(dict(await request.post()))  # type: ignore[arg-type]
        self.authorizations.append(request.headers.get("Authorization", ""))
        if self.status != 200:
            return web.json_response({"error": "server_error"}, status=self.status)
        doc: dict[str, Any] = {"access_token": f"tok-{self.fetches}", "token_type": "Bearer"}
        if self.expires_in is not None:
            doc["expires_in"] = self.expires_in
        return web.json_response(doc)

    async def start(self) -> TokenEndpoint:
        app = web.Application()
        app.router.add_post("/token", self._token)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"


def server_context(
    ca: trustme.CA, *names: str, client_ca: trustme.CA | None = None
) -> ssl.SSLContext:
    """A server context for `names`; with `client_ca`, it requires a client certificate of it."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    if client_ca is not None:
        client_ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_pem(ca: trustme.CA, name: str = "causeflow-client") -> tuple[str, str]:
    """A client certificate issued by `ca` and its key, PEM."""
    leaf = ca.issue_cert(name)
    cert = b"".join(blob.bytes() for blob in leaf.cert_chain_pems).decode()
    return cert, leaf.private_key_pem.bytes().decode()


def self_signed_pem(*, days: int = 30, expired: bool = False) -> tuple[str, str]:
    """A self-signed EC certificate and its key, PEM (expired ones too)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self-signed")])
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=days * 2) if expired else now - dt.timedelta(days=1)
    end = now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


async def egress_sub(
    ctx: AppContext,
    url: str,
    *,
    tls: tuple[str, str] | None = None,
    auth: DeliveryAuth | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    sub_id = await add_subscription(ctx, url, headers=headers)
    box = ctx.keys.box
    values = {}
    if tls is not None:
        values["client_tls_enc"] = box.seal(dumps_str(ClientTls(*tls).to_json()))
    if auth is not None:
        values["delivery_auth_enc"] = box.seal(dumps_str(auth.to_json()))
    if values:
        await set_subscription(ctx, sub_id, **values)
    return sub_id


def oauth(endpoint: TokenEndpoint, **extra: str) -> DeliveryAuth:
    return DeliveryAuth(
        type="oauth2",
        token_url=endpoint.url,
        client_id="client-1",
        client_secret="shh:secret",
        **extra,
    )
