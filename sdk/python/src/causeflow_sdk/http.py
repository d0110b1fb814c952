"""The client library's HTTP layer: one aiohttp session, credentials, JSON, error mapping.

Every non-2xx answer becomes `CauseFlowAPIError` (from the service's `{"error","message",
"details"}` body when there is one); a request that gets no answer becomes
`CauseFlowConnectionError`. Requests are not retried here: only the stream reconnects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from causeflow_sdk.errors import CauseFlowAPIError, CauseFlowConnectionError

USER_AGENT = "causeflow-python"

Params = Mapping[str, str | int | None]


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None  # an HTTP-date: rare from this service, not worth a date parser


def api_error(status: int, body: bytes, headers: Mapping[str, str]) -> CauseFlowAPIError:
    """The error for a non-2xx answer, from its JSON error body or, failing that, its text."""
    retry_after = _retry_after(headers.get("Retry-After"))
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        details = parsed.get("details")
        return CauseFlowAPIError(
            status,
            parsed["error"],
            str(parsed.get("message") or parsed["error"]),
            details if isinstance(details, dict) else None,
            retry_after=retry_after,
        )
    text = body.decode("utf-8", errors="replace").strip()[:200]
    return CauseFlowAPIError(
        status, f"http_{status}", text or "no error body", retry_after=retry_after
    )


class Transport:
    """Base URL, credentials and the session, shared by every resource of one client.

    The session is created on first use, inside the running event loop (aiohttp sessions
    belong to one loop). A session passed in by the caller is used as is and not closed.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        session: aiohttp.ClientSession | None = None,
        user_agent: str | None = None,
    ) -> None:
        if api_key and token:
            raise ValueError("give api_key or token, not both")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers: dict[str, str] = {"User-Agent": user_agent or USER_AGENT}
        if api_key:
            self.headers["X-API-Key"] = api_key
        elif token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._session = session
        self._owns_session = session is None

    def url(self, path: str) -> str:
        return self.base_url + path

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()
        self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON answer (None for an empty body)."""
        headers = dict(self.headers)
        data: bytes | None = None
        if json is not None:
            data = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        url = self.url(path)
        try:
            async with self.session().request(
                method, url, params=query, data=data, headers=headers, allow_redirects=False
            ) as response:
                body = await response.read()
                if response.status >= 400:
                    raise api_error(response.status, body, response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise CauseFlowConnectionError(f"{method} {url}: {reason}") from exc
        try:
            return orjson.loads(body) if body else None
        except orjson.JSONDecodeError as exc:
            raise CauseFlowConnectionError(f"{method} {url}: the answer is not JSON") from exc
