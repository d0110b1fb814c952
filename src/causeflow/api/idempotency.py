"""`Idempotency-Key` on POST requests (docs/reference.md §2.5), as pure-ASGI middleware.

Per tenant, kept `CAUSEFLOW_IDEMPOTENCY_TTL_SECONDS`: the same key with the same request
replays the first response; with a different request it is 422 `idempotency_key_reused`; while
the first is still being answered, 409. The record is claimed before the handler runs, in its
own small transaction, so two concurrent requests with one key cannot both run. A 5xx releases
the key so the client may try again. A claim left by a crashed process goes stale after
`CAUSEFLOW_IDEMPOTENCY_INFLIGHT_SECONDS`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import delete, select, update

from causeflow.api.gateway import ASGIApp, Message, Receive, Scope, Send, send_error
from causeflow.api.tables import idempotency_keys
from causeflow.context import AppContext
from causeflow.errors import CauseFlowError, Conflict, ValidationFailed
from causeflow.jsonutil import dumps_str, loads

HEADER = b"idempotency-key"
_KEEP_HEADERS = {b"content-type", b"location"}


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
        principal = scope.get("state", {}).get("principal")
        if not key or principal is None or principal.tenant_id is None:
            await self.app(scope, receive, send)
            return
        if len(key) > 255:
            await send_error(send, ValidationFailed.at("Idempotency-Key", "at most 255 characters"))
            return
        try:
            body = await _read_body(receive)
        except CauseFlowError as exc:
            await send_error(send, exc)
            return
        digest = hashlib.sha256(
            scope["method"].encode()
            + b" "
            + scope["path"].encode()
            + b"?"
            + scope.get("query_string", b"")
            + b"\n"
            + body
        ).hexdigest()
        tenant_id = principal.tenant_id
        replay = await self._claim(tenant_id, key, digest)
        if replay is not None:
            await _replay(send, replay)
            return

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray()}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = [
                    (k.decode(), v.decode())
                    for k, v in message.get("headers", [])
                    if k.lower() in _KEEP_HEADERS
                ]
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        sent = False

        async def replay_receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay_receive, capture)
        finally:
            await self._finish(tenant_id, key, captured)

    async def _claim(self, tenant_id: str, key: str, digest: str) -> dict[str, Any] | None:
        ctx = self.ctx
        now = ctx.clock.now_ms()
        ttl_ms = ctx.settings.idempotency_ttl_seconds * 1000
        stale_ms = ctx.settings.idempotency_inflight_seconds * 1000
        db = ctx.db
        async with db.transaction() as tx:
            inserted = await tx.execute(
                db.dialect.insert_ignore(idempotency_keys, ["tenant_id", "key"]).values(
                    tenant_id=tenant_id,
                    key=key,
                    request_hash=digest,
                    state="in_flight",
                    created_at=now,
                )
            )
            if inserted.rowcount:
                return None
            row = (
                await tx.execute(
                    select(idempotency_keys).where(
                        idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.key == key
                    )
                )
            ).one()
            expired = row.created_at < now - ttl_ms
            stale = row.state == "in_flight" and row.created_at < now - stale_ms
            if expired or stale:
                await tx.execute(
                    update(idempotency_keys)
                    .where(idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.key == key)
                    .values(
                        request_hash=digest,
                        state="in_flight",
                        created_at=now,
                        status_code=None,
                        response_body=None,
                        response_headers=None,
                    )
                )
                return None
        if row.state == "in_flight":
            return {
                "error": Conflict(
                    "a request with this Idempotency-Key is still in flight",
                    code="idempotency_key_in_flight",
                )
            }
        if row.request_hash != digest:
            return {
                "error": ValidationFailed(
                    "this Idempotency-Key was used with a different request",
                    code="idempotency_key_reused",
                )
            }
        return {
            "status": row.status_code,
            "body": row.response_body,
            "headers": loads(row.response_headers or "[]"),
        }

    async def _finish(self, tenant_id: str, key: str, captured: dict[str, Any]) -> None:
        where = (idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.key == key)
        async with self.ctx.db.transaction() as tx:
            if captured["status"] >= 500:
                await tx.execute(delete(idempotency_keys).where(*where))
            else:
                await tx.execute(
                    update(idempotency_keys)
                    .where(*where)
                    .values(
                        state="done",
                        status_code=captured["status"],
                        response_body=bytes(captured["body"]).decode("utf-8", "replace"),
                        response_headers=dumps_str(captured["headers"]),
                    )
                )


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _replay(send: Send, stored: dict[str, Any]) -> None:
    if "error" in stored:
        await send_error(send, stored["error"])
        return
    body = (stored["body"] or "").encode()
    headers = [(k.encode(), v.encode()) for k, v in stored["headers"]]
    headers = [h for h in headers if h[0] != b"content-length"]
    headers += [(b"content-length", str(len(body)).encode()), (b"idempotent-replayed", b"true")]
    await send({"type": "http.response.start", "status": stored["status"], "headers": headers})
    await send({"type": "http.response.body", "body": body})
