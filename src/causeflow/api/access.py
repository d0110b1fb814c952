"""The outermost ASGI layer: a request id, the request's server span, one access-log line.

Every HTTP response carries `X-Request-Id`: the caller's own when it sent a plain one (at most
128 characters of letters, digits and `._:-`), else a new one. With tracing on, the request
runs inside a server span that continues the caller's `traceparent`. With the access log on
(`CAUSEFLOW_ACCESS_LOG`, the default) one record of `causeflow.access` follows each request:
method, route template (never the raw path: no id, no query string, so no credential in it),
status, duration, tenant (once authenticated) and request id. A stream logs once, when it ends.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import compile_path

from causeflow.api.gateway import INGEST_PREFIX, ASGIApp, Message, Receive, Scope, Send
from causeflow.logtext import clean
from causeflow.tracing import spans

log = logging.getLogger("causeflow.access")

INBOUND_ROUTE = "/v1/webhooks/{tenantId}/{provider}"
UNMATCHED = "unmatched"  # the route of a request no route answers (404)
MATCHES_KEPT = 1024  # (method, path) answers of `RouteTable.match` kept
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # whole value: fullmatch


def request_id_of(scope: Scope) -> str:
    """The caller's `X-Request-Id` if it is a plain one, else a new random one."""
    for name, value in scope["headers"]:
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):  # `$` would let a trailing newline through
                return text
            break
    return os.urandom(16).hex()  # what `secrets.token_hex(16)` answers, with fewer calls


class AccessLog:
    """Wraps the whole application (`app.create_app` adds it last, so it runs first)."""

    def __init__(self, app: ASGIApp, routes: Any, enabled: bool = True) -> None:
        self.app = app
        self._routes = routes  # the application's routes: the template of what it did not route
        self._table: RouteTable | None = None  # made on first use, once every route is there
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        status = 0
        rid = request_id.encode()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid)]
            await send(message)

        method: str = scope["method"]
        with spans.server_span(method, _trace_headers(scope)) as span:
            try:
                await self.app(scope, receive, sending)
            finally:
                route = self.route_of(scope)
                _describe(span, method, route, status or 500, request_id)
                if self.enabled:
                    self._log(scope, method, route, status or 500, started, request_id, span)

    def route_of(self, scope: Scope) -> str:
        """The template of the route that answered (or would have: the gateway answers 401,
        413 and 429 and the inbound alerts before routing), else `unmatched`."""
        if self._table is None:
            self._table = RouteTable(self._routes)
        route = scope.get("route")
        if route is not None:
            return self._table.template_of(route)
        path: str = scope["path"]
        if path.startswith(INGEST_PREFIX) and path.count("/") == 4:
            return INBOUND_ROUTE
        return self._table.match(scope["method"], path)

    def _log(
        self,
        scope: Scope,
        method: str,
        route: str,
        status: int,
        started: float,
        request_id: str,
        span: spans.Handle,
    ) -> None:
        if not log.isEnabledFor(logging.INFO):
            return  # nothing to write: nothing to gather
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        tenant_id = _tenant_of(scope)
        fields: dict[str, Any] = {
            "method": clean(method, 16),
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "tenant_id": tenant_id,
            "request_id": request_id,
        }
        traceparent = span.traceparent
        if traceparent:
            fields["trace_id"] = traceparent[3:35]
        log.info(
            "%s %s %d %.1fms tenant=%s request_id=%s",
            fields["method"],
            route,
            status,
            duration_ms,
            tenant_id or "-",
            request_id,
            extra=fields,
        )


class RouteTable:
    """Every route's full template (prefixes included), by route and by path."""

    def __init__(self, routes: Any) -> None:
        self._by_route: dict[int, str] = {}
        self._patterns: list[tuple[re.Pattern[str], frozenset[str] | None, str]] = []
        self._matched: dict[tuple[str, str], str] = {}  # (method, path) -> `match`'s answer
        for context in iter_route_contexts(routes):
            template = context.path_format
            if template is None:
                continue
            self._by_route.setdefault(id(context.original_route), template)
            methods = context.methods
            pattern = compile_path(template)[0]
            self._patterns.append((pattern, frozenset(methods) if methods else None, template))

    def template_of(self, route: Any) -> str:
        found = self._by_route.get(id(route))
        return found if found is not None else str(getattr(route, "path", UNMATCHED))

    def match(self, method: str, path: str) -> str:
        """The template of the route for this path and method (one for the path alone if no
        route takes the method: a 405), else `unmatched`. The paths of the routes the gateway
        answers itself come again and again: their answers are kept (a bounded number)."""
        found = self._matched.get((method, path))
        if found is None:
            found = self._match(method, path)
            if len(self._matched) >= MATCHES_KEPT:
                self._matched.clear()
            self._matched[(method, path)] = found
        return found

    def _match(self, method: str, path: str) -> str:
        partial = UNMATCHED
        for pattern, methods, template in self._patterns:
            if pattern.match(path):
                if methods is None or method in methods or (method == "HEAD" and "GET" in methods):
                    return template
                if partial == UNMATCHED:
                    partial = template
        return partial


def _tenant_of(scope: Scope) -> str | None:
    state = scope.get("state") or {}
    principal = state.get("principal")
    tenant_id = getattr(principal, "tenant_id", None) or state.get("tenant_id")
    return tenant_id if isinstance(tenant_id, str) else None


def _trace_headers(scope: Scope) -> dict[str, str]:
    """The request's trace context headers (read only while tracing is on)."""
    if not spans.enabled():
        return {}
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        lowered = name.lower()
        if lowered in (b"traceparent", b"tracestate"):
            found[lowered.decode()] = value.decode("latin-1")
    return found


def _describe(span: spans.Handle, method: str, route: str, status: int, request_id: str) -> None:
    if span.span is None:
        return
    span.rename(f"{method} {route}")
    span.set("http.route", route)
    span.set("http.response.status_code", status)
    span.set("causeflow.request.id", request_id)
    if status >= 500:
        span.fail(f"HTTP {status}")
