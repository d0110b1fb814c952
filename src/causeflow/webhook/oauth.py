"""OAuth2 client-credentials tokens for webhook deliveries, one cached token per subscription.

A token is fetched (RFC 6749 §4.4, the client authenticated with HTTP Basic, §2.3.1) through
the delivery client, so the token URL passes the same SSRF vetting and proxy as deliveries. It
is kept until shortly before `expires_in` (at most a day) runs out (`EARLY_SECONDS`, at most a
tenth of its life) and then fetched again; one fetch at a time per subscription: the
deliveries that need a token while it runs wait for that fetch and share its outcome, its
failure included (each for at most its own timeout: a waiter that gives up leaves the fetch
running for the others); a failure stays the answer for as long as the fetch took (at most
`FAILURE_HOLD_SECONDS`), so a slow failing endpoint is asked at most half the time instead of
every delivery holding a slot of its receiver's host (shared with other subscriptions) for the
request timeout, while a quick failure is retried on the schedule as before.
`drop` forgets a token (the receiver answered 401). A failed fetch raises `TokenError`, whose
message becomes the attempt's error; an access token that could not follow `Bearer ` in a
header (control characters, spaces, non-ASCII) is such a failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from causeflow.webhook.deliveryauth import DeliveryAuth, is_bearer_token
from causeflow.webhook.sender import SendResult

EARLY_SECONDS = 30.0  # refresh this long before expiry (at most a tenth of the token's life)
DEFAULT_LIFETIME = 300.0  # a token without expires_in is reused this long
MAX_LIFETIME = 86_400.0  # a longer expires_in counts as a day: fetched again at least daily
MAX_TOKEN_BYTES = 16 * 1024  # the most of a token answer read
FAILURE_HOLD_SECONDS = 30.0  # a failed fetch is the answer as long as it took, at most this
KEPT = 10_000  # subscriptions whose token is kept (all forgotten beyond)

Post = Callable[..., Awaitable[SendResult]]


class TokenError(Exception):
    """The token could not be had; str() is the attempt's error."""


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    config: tuple[Any, ...]  # the auth it was fetched for: a changed one fetches again
    refresh_at: float


@dataclass(frozen=True, slots=True)
class _Failure:
    message: str
    config: tuple[Any, ...]
    until: float


def token_request(auth: DeliveryAuth) -> tuple[bytes, dict[str, str]]:
    """The form body and headers of a client-credentials token request. Pure."""
    form = {"grant_type": "client_credentials"}
    if auth.scope:
        form["scope"] = auth.scope
    if auth.audience:
        form["audience"] = auth.audience
    basic = aiohttp.encode_basic_auth(
        quote(auth.client_id or "", safe=""), quote(auth.client_secret or "", safe="")
    )
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
        "Authorization": basic,
    }
    return urlencode(form).encode(), headers


def read_token(result: SendResult) -> tuple[str, float | None]:
    """The access token and its lifetime (seconds) from the answer; TokenError otherwise."""
    if result.error:
        raise TokenError(f"auth_error: token endpoint: {result.error}")
    if result.status != 200:
        raise TokenError(f"auth_error: token endpoint answered HTTP {result.status}")
    try:
        doc = orjson.loads(result.body)
    except orjson.JSONDecodeError as exc:
        raise TokenError("auth_error: token endpoint answer is not JSON") from exc
    token = doc.get("access_token") if isinstance(doc, dict) else None
    if not isinstance(token, str) or not token:
        raise TokenError("auth_error: token endpoint answer has no access_token")
    if not is_bearer_token(token):
        raise TokenError("auth_error: the access_token is not visible ASCII without spaces")
    token_type = doc.get("token_type", "bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise TokenError(f"auth_error: token type {token_type!r} is not bearer"[:200])
    lifetime = doc.get("expires_in")
    if isinstance(lifetime, str) and lifetime.isascii() and lifetime.isdigit():
        # a longer string is more than a day anyway (and too long for int() to read)
        lifetime = int(lifetime) if len(lifetime) <= 12 else MAX_LIFETIME
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
        return token, None
    return token, min(float(lifetime), MAX_LIFETIME)


def refresh_at(now: float, lifetime: float | None) -> float:
    """When a token fetched at `now` is fetched again. Pure."""
    life = DEFAULT_LIFETIME if lifetime is None else lifetime
    return now + life - min(EARLY_SECONDS, life / 10)


class OAuthTokens:
    """Tokens per subscription; `post` is the delivery client's `send`."""

    def __init__(self, post: Post, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._post = post
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        # the fetch under way per subscription, and the auth it is for
        self._fetching: dict[str, tuple[tuple[Any, ...], asyncio.Task[str]]] = {}
        self._failures: dict[str, _Failure] = {}
        self.fetches = 0

    async def token(self, subscription_id: str, auth: DeliveryAuth) -> str:
        config = (auth.token_url, auth.client_id, auth.client_secret, auth.scope, auth.audience)
        held = self._fresh(subscription_id, config)
        if held is not None:
            return held
        failure = self._failures.get(subscription_id)
        if failure is not None and failure.config == config and self._clock() < failure.until:
            raise TokenError(failure.message)
        running = self._fetching.get(subscription_id)
        if running is None or running[0] != config:
            task = asyncio.ensure_future(self._fetch(subscription_id, auth, config))
            self._fetching[subscription_id] = (config, task)
            task.add_done_callback(lambda done: self._fetched(subscription_id, done))
        else:
            task = running[1]
        # a waiter cancelled (its timeout) leaves the fetch to the others
        return await asyncio.shield(task)

    def _fetched(self, subscription_id: str, task: asyncio.Task[str]) -> None:
        running = self._fetching.get(subscription_id)
        if running is not None and running[1] is task:
            del self._fetching[subscription_id]
        if not task.cancelled():
            task.exception()  # retrieved: a failure nobody waits for any more is no warning

    def _fresh(self, subscription_id: str, config: tuple[Any, ...]) -> str | None:
        held = self._tokens.get(subscription_id)
        if held is not None and held.config == config and self._clock() < held.refresh_at:
            return held.value
        return None

    async def _fetch(
        self, subscription_id: str, auth: DeliveryAuth, config: tuple[Any, ...]
    ) -> str:
        body, headers = token_request(auth)
        self.fetches += 1
        started = self._clock()
        result = await self._post(auth.token_url or "", body, headers, max_body=MAX_TOKEN_BYTES)
        try:
            value, lifetime = read_token(result)
        except TokenError as exc:
            if len(self._failures) >= KEPT:
                self._failures.clear()
            took = max(0.0, self._clock() - started)
            until = self._clock() + min(took, FAILURE_HOLD_SECONDS)
            self._failures[subscription_id] = _Failure(str(exc), config, until)
            raise
        self._failures.pop(subscription_id, None)
        if len(self._tokens) >= KEPT:
            self._tokens.clear()
        self._tokens[subscription_id] = _Token(value, config, refresh_at(started, lifetime))
        return value

    def drop(self, subscription_id: str) -> None:
        """Forget the token: the next delivery fetches a new one."""
        self._tokens.pop(subscription_id, None)


def bearer(token: str) -> Mapping[str, str]:
    return {"Authorization": f"Bearer {token}"}
