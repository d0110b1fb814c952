"""The HTTP client of webhook deliveries: one aiohttp ClientSession per process, SSRF-vetted.

`Sender.send` makes one POST and reports what happened as a `SendResult`; network failures are
results, never exceptions. Every connection goes through `VettingResolver`, so the peer is an
address that was vetted; redirects are not followed and at most 4 KiB of the answer is read.
With a proxy (`CAUSEFLOW_WEBHOOK_PROXY`) every request leaves through it and the receiver's
name is vetted and pinned to its address before the request is made (`webhook.proxy`).
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

import aiohttp
from yarl import URL

from causeflow.webhook.proxy import Pinned, Proxy, TargetPins
from causeflow.webhook.ssrf import (
    IPNetwork,
    ResolverFn,
    SsrfBlocked,
    VettingResolver,
    parse_host_literal,
    vet_url,
)

MAX_BODY_BYTES = 4096
VETTED_URLS = 10_000  # receiver URLs whose vetting is remembered (all forgotten beyond)
_MAX_ERROR_CHARS = 500

# aiohttp warns when asked to clean up closed TLS transports on Pythons that no longer leak
# them (3.12.8+, 3.13.1+); ask only where it still matters.
_FIXED_IN_312 = (3, 12, 8)
_FIXED_IN_313 = (3, 13, 1)
_NEEDS_CLEANUP_CLOSED = sys.version_info < _FIXED_IN_312 or (
    (3, 13) <= sys.version_info < _FIXED_IN_313
)


@dataclass(frozen=True, slots=True)
class SendResult:
    """One attempt as the attempt log records it."""

    status: int | None
    latency_ms: float
    body: bytes
    error: str | None
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer, or a broker's acknowledgement (no HTTP status and no error)."""
        if self.error is not None:
            return False
        return self.status is None or 200 <= self.status < 300


_PROTOCOL_ERRORS = (
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientResponseError,
)


def _describe(prefix: str, exc: BaseException) -> str:
    detail = str(exc) or type(exc).__name__
    return f"{prefix}: {detail}"[:_MAX_ERROR_CHARS]


def _ssrf_cause(exc: BaseException) -> SsrfBlocked | None:
    """The SsrfBlocked behind `exc`, should aiohttp ever wrap it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, SsrfBlocked):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _classify(exc: BaseException) -> str:
    """The attempt's `error` for an exception raised by the request."""
    if _ssrf_cause(exc) is not None:
        return "ssrf_blocked"
    if isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        return _describe("proxy_error", exc)
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts all derive from it
        return "timeout"
    if isinstance(exc, aiohttp.ClientSSLError):
        return _describe("tls_error", exc)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return _describe("dns_error", exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _describe("connect_error", exc)
    if isinstance(exc, aiohttp.InvalidURL):
        return _describe("invalid_url", exc)
    if isinstance(exc, _PROTOCOL_ERRORS):
        return _describe("protocol_error", exc)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return _describe("network_error", exc)
    return _describe("invalid_request", exc)


class Sender:
    """Delivers webhook requests; create one per process and `start` it in the app lifespan.

    DNS answers are vetted when they are fetched and aiohttp caches them for
    `dns_cache_seconds` (`CAUSEFLOW_WEBHOOK_DNS_CACHE_SECONDS`, 60 s by default; 0 resolves and
    vets at every new connection): within that window a new connection reuses the vetted
    address without another lookup. A pooled keep-alive connection is reused only for the same
    host and port; its peer is the address that was vetted when it was opened, and no DNS
    change can move an open TCP connection to another address.
    """

    def __init__(
        self,
        *,
        allow_cidrs: Sequence[IPNetwork] = (),
        allow_http: bool = False,
        resolver_fn: ResolverFn | None = None,
        connect_timeout: float = 5.0,
        total_timeout: float = 15.0,
        max_connections: int = 256,
        ssl_context: ssl.SSLContext | None = None,
        dns_cache_seconds: int = 60,
        proxy: Proxy | None = None,
    ) -> None:
        self._allow = tuple(allow_cidrs)
        self._allow_http = allow_http
        self._resolver_fn = resolver_fn
        # `total` bounds the whole attempt, DNS and pool wait included; `sock_connect` bounds
        # the TCP and TLS set-up of a new connection.
        self._timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout)
        self._max_connections = max_connections
        self._ssl_context = ssl_context
        self._dns_cache_seconds = dns_cache_seconds
        self._session: aiohttp.ClientSession | None = None
        # url -> what vetting it gave (it depends on nothing else; names are vetted at connect)
        self._vetted: dict[str, URL | str] = {}
        self._proxy = proxy
        self._pins = (
            TargetPins(resolver_fn, allow=self._allow, ttl=dns_cache_seconds)
            if proxy is not None
            else None
        )

    async def start(self) -> None:
        if self._session is not None:
            return
        # Through a proxy the connector only ever resolves the proxy (the operator's choice,
        # loopback included); receivers are vetted and pinned in `send`.
        resolver = (
            VettingResolver(self._resolver_fn, allow=self._allow) if self._proxy is None else None
        )
        connector = aiohttp.TCPConnector(
            resolver=resolver,
            limit=max(1, self._max_connections),
            limit_per_host=0,  # per-host fairness is the worker's job (max in-flight per host)
            use_dns_cache=self._dns_cache_seconds > 0,
            ttl_dns_cache=self._dns_cache_seconds if self._dns_cache_seconds > 0 else None,
            enable_cleanup_closed=_NEEDS_CLEANUP_CLOSED,
            ssl=self._ssl_context if self._ssl_context is not None else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            # No proxies from the environment (they would bypass vetting) and no cookies
            # carried from one receiver to the next.
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",),
            proxy=self._proxy.url if self._proxy is not None else None,
        )

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
        if self._pins is not None:
            await self._pins.close()

    async def __aenter__(self) -> Sender:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def timeout_seconds(self) -> float:
        """The most one attempt may take (`CAUSEFLOW_WEBHOOK_TIMEOUT_SECONDS`)."""
        return float(self._timeout.total or 0.0)

    async def _pin(self, target: URL) -> Pinned | str:
        """Through a proxy: the request pinned to the target's vetted address (or the error)."""
        if self._pins is None:
            return Pinned(target, None, None)
        return await self._pins.pin(target)

    def _request_timeout(self, total: float | None) -> aiohttp.ClientTimeout:
        if total is None:
            return self._timeout
        return aiohttp.ClientTimeout(
            total=max(total, 0.001), sock_connect=self._timeout.sock_connect
        )

    async def send(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_body: int = MAX_BODY_BYTES,
        timeout: float | None = None,
    ) -> SendResult:
        """POST `body` to `url` once; every outcome, including failures, is a SendResult.

        `ssl_context` replaces the process's TLS context (a client certificate); at most
        `max_body` bytes of the answer are read; `timeout` replaces the total timeout."""
        if self._session is None:
            raise RuntimeError("Sender.start() has not been called")
        started = time.monotonic()

        def elapsed_ms() -> float:
            return (time.monotonic() - started) * 1000.0

        target = self._vetted.get(url)
        if target is None:
            target = self._vetted[url] = _vet_target(url, self._allow_http, self._allow)
            if len(self._vetted) > VETTED_URLS:
                self._vetted.clear()
        if isinstance(target, str):
            return SendResult(None, elapsed_ms(), b"", target)
        pinned = await self._pin(target)
        if isinstance(pinned, str):
            return SendResult(None, elapsed_ms(), b"", pinned)
        if pinned.host_header is not None:
            headers = {**headers, "Host": pinned.host_header}
        if self._proxy is not None:
            headers = {**headers, **self._proxy.headers_for(target)}

        status: int | None = None
        retry_after: str | None = None
        received = b""
        try:
            async with self._session.post(
                pinned.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=self._request_timeout(timeout),
                ssl=ssl_context if ssl_context is not None else True,
                server_hostname=pinned.server_hostname,
                proxy_headers=self._proxy.connect_headers if self._proxy is not None else None,
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                if response.content_length != 0:  # a 204 or an empty 200: nothing to read
                    received = await _read_capped(response, max_body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure of one attempt becomes its recorded error
            return SendResult(status, elapsed_ms(), received, _classify(exc), retry_after)
        error = "redirect" if status is not None and 300 <= status < 400 else None
        return SendResult(status, elapsed_ms(), received, error, retry_after)


def _vet_target(url: str, allow_http: bool, allow: Sequence[IPNetwork]) -> URL | str:
    """The URL to connect to, or the attempt's error when the URL may not be used. Pure."""
    try:
        target = vet_url(url, allow_http=allow_http, allow=allow)
    except SsrfBlocked:
        return "ssrf_blocked"
    except ValueError as exc:
        return _describe("invalid_url", exc)
    # aiohttp connects to literal addresses without asking the resolver, so they were vetted
    # just above; non-canonical spellings (`127.1`) are rewritten to the address.
    host = target.raw_host or ""
    literal = parse_host_literal(host)
    if literal is not None and literal.version == 4 and str(literal) != host:
        target = target.with_host(str(literal))
    return target


async def _read_capped(response: aiohttp.ClientResponse, limit: int = MAX_BODY_BYTES) -> bytes:
    """At most `limit` bytes of the answer; the rest is never read.

    The status decides the attempt, so a body that stalls or breaks off after the status line
    keeps what arrived instead of turning a delivered event into a failure.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        while size < limit:
            chunk = await response.content.read(limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (TimeoutError, aiohttp.ClientError, OSError):
        pass
    return b"".join(chunks)
