"""Deliveries through an operator's HTTP proxy (`CAUSEFLOW_WEBHOOK_PROXY`), still SSRF-vetted.

Through a proxy the client's connector resolves only the proxy, and the proxy would resolve the
receiver's name itself, where no vetting happens. So the delivery client resolves and vets the
receiver's name here first (`TargetPins`, the same `VettingResolver` rules as direct sending)
and then pins the request to the vetted address: the proxy is asked for `http://<address>/...`
or to `CONNECT <address>:443`, with the name in the `Host` header and, for https, as the TLS
server name (SNI and certificate check). The proxy never resolves the receiver's name, so a
DNS answer that changes between vetting and connecting (rebinding) cannot move a delivery to
another address. `parse_proxy` reads the setting; the rest is pure apart from the lookup.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from yarl import URL

from causeflow.webhook.ssrf import (
    IPNetwork,
    ResolverFn,
    SsrfBlocked,
    VettingResolver,
    parse_host_literal,
)

PINS = 10_000  # vetted names remembered (all forgotten beyond)


@dataclass(frozen=True, slots=True)
class Proxy:
    """The proxy URL without credentials, and the credentials as a Proxy-Authorization value."""

    url: URL
    authorization: str | None

    def headers_for(self, target: URL) -> dict[str, str]:
        """Proxy-Authorization for the request itself: plain http is forwarded, not tunnelled."""
        if self.authorization is None or target.scheme != "http":
            return {}
        return {"Proxy-Authorization": self.authorization}

    @property
    def connect_headers(self) -> dict[str, str] | None:
        """Headers of the CONNECT request of an https target."""
        if self.authorization is None:
            return None
        return {"Proxy-Authorization": self.authorization}


def parse_proxy(text: str) -> Proxy | None:
    """`http://[user:password@]host:port` (ValueError otherwise); None when empty."""
    text = text.strip()
    if not text:
        return None
    try:
        url = URL(text)
        port = url.port
    except ValueError as exc:
        raise ValueError(f"the webhook proxy URL is malformed: {exc}") from exc
    if url.scheme != "http":
        raise ValueError("the webhook proxy URL must be http://host:port")
    if not url.raw_host or port is None:
        raise ValueError("the webhook proxy URL has no host")
    if url.raw_path not in ("", "/") or url.raw_query_string or url.raw_fragment:
        raise ValueError("the webhook proxy URL must not have a path, query or fragment")
    authorization = None
    if url.user is not None:
        authorization = aiohttp.encode_basic_auth(url.user, url.password or "")
    return Proxy(
        url=URL.build(scheme="http", host=url.raw_host, port=port), authorization=authorization
    )


@dataclass(frozen=True, slots=True)
class Pinned:
    """A request pinned to a vetted address: where to send it, its Host and TLS server name."""

    url: URL
    host_header: str | None
    server_hostname: str | None


def pin(target: URL, address: str) -> Pinned:
    """`target` with its name replaced by `address`; Host and SNI keep the name. Pure."""
    host = target.raw_host or ""
    default_port = target.port == {"https": 443, "http": 80}.get(target.scheme)
    host_header = host if default_port else f"{host}:{target.port}"
    server_hostname = host.rstrip(".") if target.scheme == "https" else None
    ip = ipaddress.ip_address(address)
    # yarl brackets an IPv6 host itself
    return Pinned(target.with_host(str(ip)), host_header, server_hostname)


class TargetPins:
    """Resolves and vets receiver names for proxied requests; answers kept `ttl` seconds."""

    def __init__(
        self,
        resolver_fn: ResolverFn | None,
        *,
        allow: Sequence[IPNetwork],
        ttl: float,
    ) -> None:
        self._resolver = VettingResolver(resolver_fn, allow=allow)
        self._ttl = ttl
        self._known: dict[str, tuple[str, float]] = {}

    async def address(self, host: str, port: int) -> str:
        """A vetted address of `host`; SsrfBlocked or OSError when there is none."""
        hit = self._known.get(host)
        now = time.monotonic()
        if hit is not None and now < hit[1]:
            return hit[0]
        answers = await self._resolver.resolve(host, port, family=socket.AF_UNSPEC)
        address = answers[0]["host"]
        if self._ttl > 0:
            if len(self._known) >= PINS:
                self._known.clear()
            self._known[host] = (address, now + self._ttl)
        return address

    async def pin(self, target: URL) -> Pinned | str:
        """The pinned request, or the attempt's error (`ssrf_blocked`, `dns_error: ...`)."""
        host = target.raw_host or ""
        if parse_host_literal(host) is not None:  # an address, vetted with the URL already
            return Pinned(target, None, None)
        try:
            address = await self.address(host, target.port or 0)
        except SsrfBlocked:
            return "ssrf_blocked"
        except OSError as exc:
            return f"dns_error: {exc or type(exc).__name__}"[:500]
        return pin(target, address)

    async def close(self) -> None:
        await self._resolver.close()
