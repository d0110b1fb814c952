"""The pure-ASGI front door: body-size limit, credential resolution, per-tenant rate limits.

Runs before routing so every `/v1` response, errors included, carries the rate-limit headers.
The resolved principal (or None) is left in `scope["state"]["principal"]` for the route
dependencies; an invalid credential is answered 401 here. The inbound alert endpoint
authenticates itself (keys in four places) and is answered from here by its own handler
(`ingest.router.answer_inbound`): it is the hottest route, and the framework's routing would
cost more than the handler. It is budgeted by `InboundBudget`: per tenant once a key of the
tenant in its path is accepted, per client address while it is not, so that requests without
the key never spend the tenant's budget.

A few other hot routes have a direct handler too (`FastRoute`, given by the composition root,
e.g. `POST /v1/events`): it runs after the credential and the request budget, in place of the
framework's routing, and answers only the plain, valid request; anything else (no or another
credential, an `Idempotency-Key`, an unusual content type, a body that does not validate) it
hands on, with the body it read, to the application, which answers it exactly as without it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from causeflow.api.credentials import resolve_principal
from causeflow.context import AppContext
from causeflow.errors import BadRequest, CauseFlowError, PayloadTooLarge, RateLimited
from causeflow.jsonutil import json_body
from causeflow.metrics import HTTP_REQUESTS
from causeflow.ratelimit.limiter import Decision

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STREAM_PATH = "/v1/notifications/stream"
INGEST_PREFIX = "/v1/webhooks/"
SESSION_COOKIE = "cf_session"
# Methods counted by name; anything else a client invents is one label, so it cannot grow the
# metric without bound.
_COUNTED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LIMIT_MESSAGE = "rate limit of {} requests per minute exceeded"


async def send_error(
    send: Send, exc: CauseFlowError, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json_body(exc.body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    headers += list(extra or [])
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _cookie(headers: dict[str, str], name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


# The inbound alert endpoint answered by the gateway itself: (ctx, scope, receive, send,
# lower-cased headers, tenant id, provider).
Inbound = Callable[[AppContext, Scope, Receive, Send, dict[str, str], str, str], Awaitable[None]]
# A route answered by the gateway itself once the request is within its budget: (ctx, scope,
# receive, send, the application to hand the request on to when it is not one it answers).
FastRoute = Callable[[AppContext, Scope, Receive, Send, ASGIApp], Awaitable[None]]


class Gateway:
    def __init__(
        self,
        app: ASGIApp,
        state: Any,
        inbound: Inbound | None = None,
        fast_routes: Mapping[tuple[str, str], FastRoute] | None = None,
    ) -> None:
        self.app = app
        self._state = state  # the application's state; `ctx` is set by the lifespan
        self._inbound = inbound
        self._fast_routes = dict(fast_routes or {})  # (method, path) -> its direct handler

    @property
    def ctx(self) -> AppContext:
        return self._state.ctx  # type: ignore[no-any-return]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _counting(send, scope["method"])
        ctx = self.ctx
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        checked = await _checked_request(scope, receive, send, headers, ctx.settings.max_body_bytes)
        if checked is None:
            return
        receive = checked
        path: str = scope["path"]
        state = scope.setdefault("state", {})
        state["principal"] = None
        if not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return

        now_ms = ctx.clock.now_ms()
        decision: Decision | None
        if path.startswith(INGEST_PREFIX):
            parts = path[len(INGEST_PREFIX) :].split("/")
            if len(parts) == 2 and all(parts) and scope["method"] == "POST" and self._inbound:
                # The hottest route skips the framework's routing and dependency machinery; it
                # authenticates and budgets itself (`InboundBudget`).
                await self._inbound(ctx, scope, receive, send, headers, parts[0], parts[1])
                return
            # Anything else under the inbound prefix carries no key anyone reads: it is budgeted
            # like a refused inbound request of its client address.
            decision = InboundBudget(ctx, scope).refused_request()
        else:
            decision = await self._authenticate(ctx, scope, send, headers, now_ms)
            if decision is None:
                return  # an invalid credential, answered
        await self._within_budget(ctx, scope, receive, send, decision, now_ms)

    async def _authenticate(
        self, ctx: AppContext, scope: Scope, send: Send, headers: dict[str, str], now_ms: int
    ) -> Decision | None:
        """Resolve the request's credential into `state["principal"]` and spend its budget
        (its tenant's, or its address's); None once an invalid credential has been answered."""
        path: str = scope["path"]
        # Query tickets and the dashboard's session cookie are credentials for the stream
        # only (EventSource cannot send headers); every other route wants a header.
        on_stream = path == STREAM_PATH
        ticket = None
        if on_stream:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            ticket = query.get("token", [None])[0]
        session = _cookie(headers, SESSION_COOKIE) if on_stream else None
        session_lookup = ctx.session_lookup
        try:
            principal = await resolve_principal(ctx, headers, ticket, session, session_lookup)
        except CauseFlowError as exc:
            decision = _budget(ctx, None, scope, now_ms, None)
            answer = exc
            if not decision.allowed:  # the address has used up its budget
                answer = _exceeded(decision, now_ms, _LIMIT_MESSAGE.format(decision.limit))
            await send_error(send, answer, decision.headers())
            return None
        scope["state"]["principal"] = principal
        limit = None
        if principal is not None and principal.tenant_id is not None:
            limit = (await ctx.tenant_limits(principal.tenant_id)).requests_per_minute
        return _budget(ctx, principal, scope, now_ms, limit)

    async def _within_budget(
        self,
        ctx: AppContext,
        scope: Scope,
        receive: Receive,
        send: Send,
        decision: Decision | None,
        now_ms: int,
    ) -> None:
        """On to the application with the rate-limit headers, or 429."""
        rl_headers = decision.headers() if decision else []
        if decision is not None and not decision.allowed:
            exceeded = _exceeded(decision, now_ms, _LIMIT_MESSAGE.format(decision.limit))
            await send_error(send, exceeded, rl_headers)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and rl_headers:
                message["headers"] = list(message.get("headers", [])) + rl_headers
            await send(message)

        fast = self._fast_routes.get((scope["method"], scope["path"]))
        if fast is not None:
            await fast(ctx, scope, receive, send_with_headers, self.app)
            return
        await self.app(scope, receive, send_with_headers)


def _budget(
    ctx: AppContext, principal: Any, scope: Scope, now_ms: int, limit: int | None
) -> Decision:
    """Spend the tenant's budget (`limit`, its effective `requestsPerMinute`), or the client
    address's."""
    settings = ctx.settings
    if principal is not None and principal.tenant_id is not None and limit is not None:
        bucket = f"tenant:{principal.tenant_id}"
    else:
        client = scope.get("client") or ("anonymous", 0)
        bucket = f"ip:{client[0]}"
        limit = settings.plan_limit(settings.default_plan)
    return ctx.limiter.hit(bucket, limit, now_ms)


def _exceeded(decision: Decision, now_ms: int, message: str) -> RateLimited:
    return RateLimited(message, headers={"Retry-After": str(decision.retry_after(now_ms))})


class InboundBudget:
    """The budget one inbound alert request is charged to, once it is known which applies.

    A request that shows an `alerts:ingest` key of the tenant named in its path spends that
    tenant's budget (`CAUSEFLOW_INGEST_RATE_LIMIT_PER_MINUTE`). One refused before that (no
    key, an unknown or foreign key, a key without the scope, an unknown provider) spends its
    client address's budget of refused requests instead
    (`CAUSEFLOW_INGEST_REFUSED_RATE_LIMIT_PER_MINUTE`), and is answered 429 once that is used
    up: without the key nobody can spend a tenant's budget. Counting is in memory
    (`RateLimiter`); nothing here touches the database.
    """

    __slots__ = ("_ctx", "_now_ms", "_client", "_state", "decision", "settled")

    def __init__(self, ctx: AppContext, scope: Scope) -> None:
        self._ctx = ctx
        self._now_ms = ctx.clock.now_ms()
        client = scope.get("client") or ("anonymous", 0)
        self._client = str(client[0])
        self._state = scope.setdefault("state", {})  # the accepted key's tenant, for the log
        self.decision: Decision | None = None
        self.settled = False  # charged to one budget or the other

    def charge_tenant(self, tenant_id: str, limit: int | None = None) -> None:
        """The key is one of `tenant_id`'s: spend its budget (`limit`, the tenant's effective
        `ingestPerMinute`; the setting's when None), or raise RateLimited."""
        self.settled = True
        self._state["tenant_id"] = tenant_id
        if limit is None:
            limit = self._ctx.settings.ingest_rate_limit_per_minute
        self.decision = self._ctx.limiter.hit(f"ingest:{tenant_id}", limit, self._now_ms)
        if not self.decision.allowed:
            raise _exceeded(
                self.decision,
                self._now_ms,
                f"the inbound rate limit of {limit} requests per minute is exceeded",
            )

    def refused_request(self) -> Decision:
        """Spend the client address's budget of refused requests."""
        self.settled = True
        limit = self._ctx.settings.ingest_refused_rate_limit_per_minute
        self.decision = self._ctx.limiter.hit(f"ingest-refused:{self._client}", limit, self._now_ms)
        return self.decision

    def refusal(self, exc: CauseFlowError) -> CauseFlowError:
        """What to answer a refused request with: `exc`, or 429 once its client address has
        used up its budget of refused requests. A request already charged to its tenant
        keeps its own answer."""
        if self.settled:
            return exc
        decision = self.refused_request()
        if decision.allowed:
            return exc
        return _exceeded(
            decision,
            self._now_ms,
            f"too many refused inbound requests from this address "
            f"(at most {decision.limit} per minute)",
        )

    def headers(self) -> list[tuple[bytes, bytes]]:
        return self.decision.headers() if self.decision is not None else []


async def _checked_request(
    scope: Scope, receive: Receive, send: Send, headers: dict[str, str], limit_bytes: int
) -> Receive | None:
    """The request's body channel if the request may go on; None once it has been answered
    (a body over the limit, a NUL in the URL)."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
        await send_error(
            send, PayloadTooLarge(f"request bodies are limited to {limit_bytes} bytes")
        )
        return None
    if declared is None and scope["method"] not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        # No declared length (chunked): read up to the limit before anything parses it.
        try:
            receive = await _buffered(receive, limit_bytes)
        except PayloadTooLarge as exc:
            await send_error(send, exc)
            return None
    if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
        await send_error(send, BadRequest("NUL characters are not allowed in URLs"))
        return None
    return receive


def _counting(send: Send, method: str) -> Send:
    """`send`, counting the response in `causeflow_http_requests_total` as its head goes out."""
    label = method if method in _COUNTED_METHODS else "OTHER"

    async def counted(message: Message) -> None:
        if message["type"] == "http.response.start":
            HTTP_REQUESTS.labels(label, f"{message['status'] // 100}xx").inc()
        await send(message)

    return counted


async def _buffered(receive: Receive, limit: int) -> Receive:
    """The body read up to `limit`, given again; cut off by the client, it is given as such
    (more to come, then `receive`'s disconnect), never as a whole body."""
    body, whole = await read_body(receive, limit)
    return replaying(body, receive, whole=whole)


async def read_body(receive: Receive, limit: int | None = None) -> tuple[bytes, bool]:
    """The request's body as read, and whether it is whole (not if the client went away);
    past `limit` bytes, `PayloadTooLarge`."""
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        seen += len(chunk)
        if limit is not None and seen > limit:
            raise PayloadTooLarge(f"request bodies are limited to {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks), True


def replaying(body: bytes, receive: Receive, *, whole: bool = True) -> Receive:
    """`receive` giving the body read already first (not `whole`: as a body the rest of which
    did not come, so `receive` says why next), then what `receive` gives."""
    done = False

    async def replay() -> Message:
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": body, "more_body": not whole}
        return await receive()

    return replay
