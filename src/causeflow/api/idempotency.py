"""`Idempotency-Key` on POST requests (docs/reference.md §2.5): pure-ASGI middleware plus a
gate in the route's permission check.

A key belongs to its caller: the tenant (the platform admin, who has none, has a space of its
own) and the credential's identity and authority (`Principal.identity`: kind, origin, subject,
key, roles, scopes). Another credential sending the same key is in its own space and never sees
the first one's response. Kept `CAUSEFLOW_IDEMPOTENCY_TTL_SECONDS`: the same key with the same
request replays the first response; with a different request it is 422
`idempotency_key_reused`; while the first is still being answered, 409.

The middleware only reads the body and remembers what the request is (`Pending`). The record
is claimed by `admit`, which the route's permission dependency calls once it has admitted the
caller (`api.deps.require`): a replay is authorized exactly like the original request, and a
caller the route refuses learns nothing about the key. The claim is its own small transaction,
so two concurrent requests with one key cannot both run. The answer is stored before its last
bytes are sent, so a client that has it and sends the request again gets it replayed. A 5xx
or a 429 (a budget spent: `Retry-After`) releases the key so the client may try again. A
claim left by a crashed process goes stale after `CAUSEFLOW_IDEMPOTENCY_INFLIGHT_SECONDS`.

Responses may carry secrets shown once (API keys, signing secrets, stream tickets), so the
stored body is sealed with the service's secret box and opened only to replay it to the caller
that made the request; the client's key is stored only as a digest together with the caller.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import delete, select, update
from starlette.requests import Request
from starlette.responses import Response

from causeflow.api.gateway import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    read_body,
    replaying,
    send_error,
)
from causeflow.api.tables import idempotency_keys
from causeflow.auth.principal import Principal
from causeflow.context import AppContext
from causeflow.db.engine import Tx
from causeflow.errors import CauseFlowError, Conflict, ValidationFailed
from causeflow.jsonutil import dumps_str, loads

HEADER = b"idempotency-key"
STATE = "idempotency"
PLATFORM_SPACE = "platform"  # the `tenant_id` of the platform admin's records
_KEEP_HEADERS = {b"content-type", b"location"}
# "Try again later" (a budget, `Retry-After`): like a 5xx, not an answer to keep for the key
TOO_MANY_REQUESTS = 429


def record_key(principal: Principal, key: str) -> tuple[str, str]:
    """The (tenant_id, key) columns of `principal`'s record for the client's `key`."""
    digest = hashlib.sha256(f"{principal.identity}\n{key}".encode()).hexdigest()
    return principal.tenant_id or PLATFORM_SPACE, digest


class IdempotentReplay(Exception):  # noqa: N818 - not an error: the answer is the stored one
    """Raised by `admit` to answer with the stored response (see `replay_response`)."""

    def __init__(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        super().__init__("idempotent replay")
        self.status = status
        self.body = body
        self.headers = headers


@dataclass
class Pending:
    """A request that carries an `Idempotency-Key`, until the route admits it."""

    ctx: AppContext
    tenant_id: str
    key: str
    digest: str
    claimed: bool = False
    decided: bool = False
    finished: bool = False

    async def claim(self) -> None:
        """Claim the record, or raise: `IdempotentReplay`, 409 in flight, 422 reused."""
        if self.decided:
            return
        self.decided = True
        row = await self._take()
        if row is None:
            return
        if row.state == "in_flight":
            raise Conflict(
                "a request with this Idempotency-Key is still in flight",
                code="idempotency_key_in_flight",
            )
        if row.request_hash != self.digest:
            raise ValidationFailed(
                "this Idempotency-Key was used with a different request",
                code="idempotency_key_reused",
            )
        raise self._replay(row)

    async def _take(self) -> Any:
        """Claim the record in its own transaction (then `claimed`, and None), a new one or one
        expired or left stale; else the record that holds the key."""
        ctx = self.ctx
        now = ctx.clock.now_ms()
        ttl_ms = ctx.settings.idempotency_ttl_seconds * 1000
        stale_ms = ctx.settings.idempotency_inflight_seconds * 1000
        db = ctx.db
        where = (idempotency_keys.c.tenant_id == self.tenant_id, idempotency_keys.c.key == self.key)
        async with db.transaction() as tx:
            inserted = await tx.execute(
                db.dialect.insert_ignore(idempotency_keys, ["tenant_id", "key"]).values(
                    tenant_id=self.tenant_id,
                    key=self.key,
                    request_hash=self.digest,
                    state="in_flight",
                    created_at=now,
                )
            )
            if inserted.rowcount:
                self.claimed = True
                return None
            row = (await tx.execute(select(idempotency_keys).where(*where))).one()
            expired = row.created_at < now - ttl_ms
            stale = row.state == "in_flight" and row.created_at < now - stale_ms
            if expired or stale:
                await tx.execute(
                    update(idempotency_keys)
                    .where(*where)
                    .values(
                        request_hash=self.digest,
                        state="in_flight",
                        created_at=now,
                        status_code=None,
                        response_body=None,
                        response_headers=None,
                    )
                )
                self.claimed = True
                return None
        return row

    def _replay(self, row: Any) -> IdempotentReplay:
        """The stored answer of `row`, to be raised."""
        try:
            body = self.ctx.keys.box.open(row.response_body or "").encode()
        except (ValueError, InvalidTag) as exc:
            # Sealed under another secret key (CAUSEFLOW_SECRET_KEY changed): the first answer
            # cannot be shown, and running the request again could do it twice.
            raise Conflict(
                "the response stored for this Idempotency-Key can no longer be read; "
                "send the request with a new key",
                code="idempotency_key_unreadable",
            ) from exc
        headers = [(str(k), str(v)) for k, v in loads(row.response_headers or "[]")]
        return IdempotentReplay(row.status_code, body, headers)

    async def finish(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Store the answer (or release the key after a 5xx or a 429); once."""
        if self.finished:
            return
        self.finished = True
        where = (idempotency_keys.c.tenant_id == self.tenant_id, idempotency_keys.c.key == self.key)
        async with self.ctx.db.transaction() as tx:
            if status >= 500 or status == TOO_MANY_REQUESTS:
                await tx.execute(delete(idempotency_keys).where(*where))
            else:
                await tx.execute(
                    update(idempotency_keys)
                    .where(*where)
                    .values(
                        state="done",
                        status_code=status,
                        response_body=self.ctx.keys.box.seal(body.decode("utf-8", "replace")),
                        response_headers=dumps_str(headers),
                    )
                )


async def purge_records(tx: Tx, cutoff_ms: int) -> int:
    """Forget the records created before `cutoff_ms` (the retention job); how many went."""
    stmt = delete(idempotency_keys).where(idempotency_keys.c.created_at < cutoff_ms)
    return (await tx.execute(stmt)).rowcount or 0


async def admit(scope: Scope) -> None:
    """Called by the permission check once it has admitted the caller: claims the request's
    `Idempotency-Key` (if it has one), or raises the stored answer or the key's error."""
    pending: Pending | None = scope.get("state", {}).get(STATE)
    if pending is not None:
        await pending.claim()


async def replay_response(_request: Request, exc: Exception) -> Response:
    """The exception handler for `IdempotentReplay`: the stored response, marked replayed."""
    assert isinstance(exc, IdempotentReplay)
    headers = {k: v for k, v in exc.headers if k.lower() != "content-length"}
    headers["idempotent-replayed"] = "true"
    return Response(exc.body, status_code=exc.status, headers=headers)


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self._state = state  # the application's state; `ctx` is set by the lifespan

    @property
    def ctx(self) -> AppContext:
        return self._state.ctx  # type: ignore[no-any-return]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        key = next((v.decode("latin-1") for k, v in scope["headers"] if k == HEADER), None)
        principal: Principal | None = scope.get("state", {}).get("principal")
        if not key or principal is None:
            # No credential: the route answers 401 (public POSTs keep no records).
            await self.app(scope, receive, send)
            return
        if len(key) > 255:
            await send_error(send, ValidationFailed.at("Idempotency-Key", "at most 255 characters"))
            return
        try:
            body, whole = await read_body(receive)
        except CauseFlowError as exc:
            await send_error(send, exc)
            return
        if not whole:
            # The client went away before the end of its body: no request to record, and the
            # route answers what it does then (400), never the part that came as a request.
            await self.app(scope, replaying(body, receive, whole=False), send)
            return
        tenant_id, stored_key = record_key(principal, key)
        pending = Pending(self.ctx, tenant_id, stored_key, _request_digest(scope, body))
        scope["state"][STATE] = pending
        await _answer_recorded(self.app, scope, receive, send, body, pending)


def _request_digest(scope: Scope, body: bytes) -> str:
    """What the request is: method, path, query and body."""
    return hashlib.sha256(
        scope["method"].encode()
        + b" "
        + scope["path"].encode()
        + b"?"
        + scope.get("query_string", b"")
        + b"\n"
        + body
    ).hexdigest()


async def _answer_recorded(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, body: bytes, pending: Pending
) -> None:
    """Run the application on the body read already; if it claimed the key, its response
    (status, kept headers, body) is stored once it has been sent."""
    captured: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray()}

    async def capture(message: Message) -> None:
        if message["type"] == "http.response.start":
            captured["status"] = message["status"]
            captured["headers"] = [
                (k.decode(), v.decode())
                for k, v in message.get("headers", [])
                if k.lower() in _KEEP_HEADERS
            ]
        elif message["type"] == "http.response.body" and pending.claimed:
            captured["body"] += message.get("body", b"")
            if not message.get("more_body"):
                # Stored before its last bytes go out: a client that has the answer and
                # sends the request again gets it replayed, never 409 in flight.
                try:
                    await _finish(pending, captured)
                finally:
                    await send(message)
                return
        await send(message)

    try:
        await app(scope, replaying(body, receive), capture)
    finally:
        if pending.claimed:
            await _finish(pending, captured)


async def _finish(pending: Pending, captured: dict[str, Any]) -> None:
    await pending.finish(captured["status"], captured["headers"], bytes(captured["body"]))
