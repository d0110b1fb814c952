"""One open publisher per broker destination, and the attempt that publishes through it.

`PublisherPool.send` makes one broker attempt and reports it as a `SendResult`, as the HTTP
sender does: the host is resolved and every address vetted by the webhook SSRF rules (and the
operator allow-list) before a connection is opened to the first of them; the publisher is kept
per subscription under a key of its URL and options, so a changed subscription gets a new one
(the old one is closed); any failure but a refusal closes the publisher, so that the next
attempt connects afresh (a restarted broker is reached again). A publisher no attempt used for
`idle_seconds` is closed by a sweep, so a deleted, disabled or re-typed subscription does not
keep its broker connection for the life of the process. A broker success is recorded with no
status code and no error (`SendResult.ok`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import yarl

from causeflow.jsonutil import dumps_str
from causeflow.webhook.destinations import registry
from causeflow.webhook.destinations.base import BrokerError, Publisher, Target
from causeflow.webhook.destinations.options import SPECS, port_of
from causeflow.webhook.sender import SendResult
from causeflow.webhook.ssrf import IPNetwork, SsrfBlocked, is_forbidden, parse_host_literal

log = logging.getLogger("causeflow.webhook.worker")

Resolve = Callable[[str, int], Awaitable[Sequence[str]]]
_MAX_ERROR_CHARS = 500
IDLE_SECONDS = 120.0  # a publisher unused this long is closed (reopened at the next attempt)


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses of `host`, in the resolver's order, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def vetted_address(
    url: yarl.URL, port: int, allow: Sequence[IPNetwork], resolve: Resolve
) -> str:
    """The address to connect to: the literal host or the first answer of the resolver, once
    every address it stands for passed the SSRF rules (`SsrfBlocked` otherwise)."""
    host = url.raw_host or ""
    if not host:
        raise ValueError("the URL has no host")
    literal = parse_host_literal(host)
    if literal is not None:
        if is_forbidden(literal, allow):
            raise SsrfBlocked(f"{literal} is not a public address")
        return str(literal)
    answers = await resolve(host, port)
    if not answers:
        raise OSError(f"no addresses for {host}")
    for text in answers:
        if is_forbidden(ipaddress.ip_address(text.split("%")[0]), allow):
            raise SsrfBlocked(f"{host} resolves to {text}, which is not a public address")
    return answers[0]


def _describe(prefix: str, exc: BaseException) -> str:
    return f"{prefix}: {str(exc) or type(exc).__name__}"[:_MAX_ERROR_CHARS]


def classify(exc: BaseException) -> str:
    """The attempt's `error` for a failed broker attempt."""
    if isinstance(exc, SsrfBlocked):
        return "ssrf_blocked"
    if isinstance(exc, BrokerError):
        return _describe("broker_refused" if exc.refused else "broker_unavailable", exc)
    if isinstance(exc, registry.Unsupported):
        return _describe("broker_unsupported", exc)
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, socket.gaierror):
        return _describe("dns_error", exc)
    if isinstance(exc, ValueError):
        return _describe("invalid_url", exc)
    if isinstance(exc, OSError):
        return _describe("connect_error", exc)
    return _describe("broker_error", exc)


class PublisherPool:
    """The process's broker publishers, one per subscription (its current URL and options)."""

    def __init__(
        self,
        *,
        allow: Sequence[IPNetwork] = (),
        timeout: float = 15.0,
        resolve: Resolve | None = None,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self._allow = tuple(allow)
        self._timeout = timeout
        self._idle = max(idle_seconds, 0.05)
        self._used: dict[str, float] = {}  # subscription id -> monotonic time of last use
        self._busy: dict[str, int] = {}  # subscription id -> attempts in progress
        self._sweeper: asyncio.Task[None] | None = None
        self._resolve: Resolve = resolve or system_resolve
        self._open: dict[str, tuple[str, Publisher]] = {}  # subscription id -> (key, publisher)
        self._locks: dict[str, asyncio.Lock] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._open)

    async def send(
        self,
        subscription_id: str,
        type_: str,
        url: str,
        options: Mapping[str, Any],
        body: bytes,
        headers: Mapping[str, str],
    ) -> SendResult:
        """Publish once; every outcome, failures included, is a SendResult."""
        started = time.monotonic()
        publisher: Publisher | None = None
        self._busy[subscription_id] = self._busy.get(subscription_id, 0) + 1
        try:
            async with asyncio.timeout(self._timeout):
                publisher = await self._publisher(subscription_id, type_, url, options)
                await publisher.publish(body, headers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure of one attempt becomes its recorded error
            if not (isinstance(exc, BrokerError) and exc.refused):
                self._discard(subscription_id, publisher)
            return SendResult(None, (time.monotonic() - started) * 1000, b"", classify(exc))
        finally:
            self._done_with(subscription_id)
        return SendResult(None, (time.monotonic() - started) * 1000, b"", None)

    def _done_with(self, subscription_id: str) -> None:
        self._used[subscription_id] = time.monotonic()
        left = self._busy.get(subscription_id, 1) - 1
        if left > 0:
            self._busy[subscription_id] = left
        else:
            self._busy.pop(subscription_id, None)
        if self._open and (self._sweeper is None or self._sweeper.done()):
            self._sweeper = asyncio.create_task(self._sweep_idle())

    async def _sweep_idle(self) -> None:
        """Close the publishers unused for `idle_seconds`; ends when none is left open."""
        while self._open:
            await asyncio.sleep(min(self._idle / 2, 30.0))
            cutoff = time.monotonic() - self._idle
            for subscription_id, (_key, publisher) in list(self._open.items()):
                if subscription_id in self._busy:
                    continue
                if self._used.get(subscription_id, 0.0) <= cutoff:
                    self._used.pop(subscription_id, None)
                    self._locks.pop(subscription_id, None)
                    self._discard(subscription_id, publisher)

    async def _publisher(
        self, subscription_id: str, type_: str, url: str, options: Mapping[str, Any]
    ) -> Publisher:
        key = f"{type_} {url} {dumps_str(dict(options))}"
        lock = self._locks.setdefault(subscription_id, asyncio.Lock())
        async with lock:
            held = self._open.get(subscription_id)
            if held is not None and held[0] == key:
                return held[1]
            if held is not None:  # the subscription changed: its old publisher goes
                self._discard(subscription_id, held[1])
            module = registry.load(type_)
            parsed = yarl.URL(url)
            port = port_of(SPECS[type_], parsed.scheme, parsed.port)
            address = await vetted_address(parsed, port, self._allow, self._resolve)
            target = Target(url=parsed, address=address, options=dict(options))
            publisher: Publisher = await module.open_publisher(target, timeout=self._timeout)
            self._open[subscription_id] = (key, publisher)
            return publisher

    def _discard(self, subscription_id: str, publisher: Publisher | None) -> None:
        """Forget the subscription's publisher, if it is still this one, and close it aside."""
        held = self._open.get(subscription_id)
        if publisher is None or held is None or held[1] is not publisher:
            return
        del self._open[subscription_id]
        task = asyncio.create_task(self._close_one(publisher))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_one(self, publisher: Publisher) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await publisher.close()
        except Exception as exc:  # a broken connection may fail to close; it is dropped anyway
            log.debug("closing a broker publisher failed: %s", exc)

    async def close(self) -> None:
        """Close every publisher (engine stop)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        open_, self._open = list(self._open.values()), {}
        for _key, publisher in open_:
            await self._close_one(publisher)
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._closing, return_exceptions=True)
