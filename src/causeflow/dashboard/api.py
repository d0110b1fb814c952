"""In-process calls to the service's own public JSON API, on the signed-in user's behalf.

The dashboard is a client of `/v1/...` like any other: each call is a complete ASGI request
through the whole app (gateway, rate limits, routing), carrying the user's credential as a
Bearer token, so the pages see exactly what the API answers and nothing of its internals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

# A page must not hang on one API call; every /v1 route the dashboard uses is short.
CALL_TIMEOUT_SECONDS = 15.0


class ApiError(Exception):
    """A non-2xx answer, carrying the error shape (docs/reference.md §8.7) for the page."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None

    def error(self) -> ApiError:
        code, message, details = "http_error", f"the API answered {self.status}", None
        try:
            data = self.json()
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            code = str(data.get("error") or code)
            message = str(data.get("message") or message)
            details = data.get("details")
        return ApiError(self.status, code, message, details)


async def call_asgi(
    app: ASGIApp,
    method: str,
    path: str,
    *,
    query: dict[str, Any] | None = None,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    client: tuple[str, int] | None = None,
    scheme: str = "http",
    timeout: float = CALL_TIMEOUT_SECONDS,
) -> ApiResponse:
    """Run one HTTP request through `app` and collect its whole response."""
    pairs = {k: v for k, v in (query or {}).items() if v is not None and v != ""}
    query_string = urlencode(pairs, doseq=True).encode()
    raw_headers = [(b"host", b"causeflow.internal")]
    raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers or []]
    if body:
        raw_headers.append((b"content-length", str(len(body)).encode()))
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query_string,
        "headers": raw_headers,
        "client": client or ("127.0.0.1", 0),
        "server": ("causeflow.internal", 80),
        "state": {},
    }
    sent_body = False
    finished = asyncio.Event()
    status = 500
    response_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        # Asked again only by code that watches for a disconnect: that happens when we are done.
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            for key, value in message.get("headers", []):
                response_headers[key.decode("latin-1").lower()] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                finished.set()

    try:
        async with asyncio.timeout(timeout):
            await app(scope, receive, send)
    finally:
        finished.set()
    return ApiResponse(status, response_headers, b"".join(chunks))


class ApiClient:
    """The API as one signed-in user sees it; raises `ApiError` on any non-2xx answer."""

    def __init__(
        self,
        app: ASGIApp,
        credential: str,
        *,
        client: tuple[str, int] | None = None,
        scheme: str = "http",
    ) -> None:
        self._app = app
        self._credential = credential
        self._client = client
        self._scheme = scheme

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        headers = [("authorization", f"Bearer {self._credential}"), ("accept", "application/json")]
        body = b""
        if json is not None:
            body = orjson.dumps(json)
            headers.append(("content-type", "application/json"))
        response = await call_asgi(
            self._app,
            method,
            path,
            query=query,
            body=body,
            headers=headers,
            client=self._client,
            scheme=self._scheme,
        )
        if not response.ok:
            raise response.error()
        return response.json()

    async def get(self, path: str, **query: Any) -> Any:
        return await self.request("GET", path, query=query)

    async def post(self, path: str, json: Any = None) -> Any:
        return await self.request("POST", path, json=json if json is not None else {})

    async def patch(self, path: str, json: Any) -> Any:
        return await self.request("PATCH", path, json=json)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)
