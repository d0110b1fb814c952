"""Signing keys of an external identity provider, fetched from its JWKS URL off the event loop.

Verifying a token only ever reads the keys held in memory; nothing on a request's path blocks.
The set is fetched with aiohttp and a short timeout (`CAUSEFLOW_JWKS_TIMEOUT_SECONDS`):

- in the background, when the process starts and then every `CAUSEFLOW_JWKS_REFRESH_SECONDS`
  (sooner after a failed fetch);
- on demand when a token names a key id that is not held, at most once per
  `CAUSEFLOW_JWKS_MIN_REFRESH_SECONDS`: between those, an unknown key id is refused (401) from
  what is held, so tokens with made-up key ids cannot make the service fetch per request.

Every fetch is single-flight: whoever needs the set while a fetch is under way waits for that
one. A fetch that fails (the server down, slow, or answering something that is not a key set)
keeps the keys already held, so an outage of the identity provider does not refuse tokens
signed by keys the service knows. A successful fetch replaces the set, so a key the provider
withdrew stops working at the next refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt

from causeflow.settings import Settings
from causeflow.settings import check_jwks_url as check_url

logger = logging.getLogger("causeflow.auth")

# A key set is a few kilobytes; anything much larger is not one.
MAX_BODY_BYTES = 1024 * 1024


def parse_key_set(text: str | bytes) -> dict[str, jwt.PyJWK]:
    """Signing keys by key id; keys without an id, or not for signatures, are left out."""
    try:
        keyset = jwt.PyJWKSet.from_dict(json.loads(text))
    except (ValueError, TypeError, AttributeError, jwt.PyJWTError) as exc:
        raise ValueError(f"not a usable JSON Web Key Set: {exc}") from exc
    keys = {k.key_id: k for k in keyset.keys if k.key_id and k.public_key_use in ("sig", None)}
    if not keys:
        raise ValueError("the key set has no signing key with a key id")
    return keys


class JwksKeys:
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 3.0,
        refresh_seconds: float = 300.0,
        min_refresh_seconds: float = 30.0,
        allow_http: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        check_url(url, allow_http)
        self.url = url
        self.allow_http = allow_http
        self.timeout = timeout
        self.refresh_seconds = refresh_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self._monotonic = monotonic
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetch: asyncio.Task[bool] | None = None
        self._last_attempt: float | None = None
        self._background: asyncio.Task[None] | None = None
        self.attempts = 0  # fetches started (for tests and logs)
        self.failures = 0  # fetches that kept the previous set

    def get(self, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(kid)

    async def ensure(self, kid: str) -> None:
        """Make `kid` known if a fetch may do so now; returns at once when it is held."""
        if kid in self._keys:
            return
        fetch = self._fetch
        if fetch is None:
            last = self._last_attempt
            if last is not None and self._monotonic() - last < self.min_refresh_seconds:
                return  # refused from what is held until a refresh is due
            fetch = self._start()
        await _wait(fetch)

    async def refresh(self) -> bool:
        """Fetch the set now (or wait for the fetch under way); True when it was replaced."""
        fetch = self._fetch or self._start()
        await _wait(fetch)
        return not fetch.cancelled() and fetch.result()

    def _start(self) -> asyncio.Task[bool]:
        self._last_attempt = self._monotonic()
        self.attempts += 1
        task = asyncio.get_running_loop().create_task(self._download())
        self._fetch = task

        def done(_: asyncio.Task[bool]) -> None:
            if self._fetch is task:
                self._fetch = None

        task.add_done_callback(done)
        return task

    async def _download(self) -> bool:
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(self.url, headers={"Accept": "application/json"}) as response,
            ):
                # A redirect must not lead to plain http when https is required.
                check_url(str(response.url), self.allow_http)
                if response.status != 200:
                    raise ValueError(f"the server answered {response.status}")
                body = await response.content.read(MAX_BODY_BYTES + 1)
                if len(body) > MAX_BODY_BYTES:
                    raise ValueError(f"the answer is larger than {MAX_BODY_BYTES} bytes")
            keys = parse_key_set(body)
        except Exception as exc:  # keep the keys held; the next refresh tries again
            self.failures += 1
            logger.warning(
                "JWKS %s could not be fetched (%s: %s); keeping the %d keys held",
                self.url,
                type(exc).__name__,
                exc,
                len(self._keys),
            )
            return False
        self._keys = keys
        return True

    # the background refresh

    def start(self) -> None:
        if self._background is None:
            self._background = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def stop(self) -> None:
        tasks = [t for t in (self._background, self._fetch) if t is not None]
        self._background = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _refresh_forever(self) -> None:
        while True:
            fresh = await self.refresh()
            # After a failure, try again sooner (but no more often than forced refreshes).
            retry = min(self.refresh_seconds, max(self.min_refresh_seconds, 1.0))
            await asyncio.sleep(self.refresh_seconds if fresh else retry)


def jwks_keys(settings: Settings) -> JwksKeys | None:
    """The JWKS key holder the settings ask for, or None without `CAUSEFLOW_JWKS_URL`."""
    if not settings.jwks_url:
        return None
    return JwksKeys(
        settings.jwks_url,
        timeout=settings.jwks_timeout_seconds,
        refresh_seconds=settings.jwks_refresh_seconds,
        min_refresh_seconds=settings.jwks_min_refresh_seconds,
        allow_http=settings.jwks_allow_http,
    )


async def _wait(task: asyncio.Task[Any]) -> None:
    """Wait for a shared fetch; a caller that is cancelled leaves it running for the others."""
    await asyncio.wait((task,))
