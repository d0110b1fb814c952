"""Dashboard sessions: the browser holds a random id, the `sessions` table holds the rest.

A row is keyed by the SHA-256 of the id and keeps the tenant, who signed in, the per-session
CSRF token and the credential itself, sealed with the service's secret box, so pages can call
the API on the user's behalf. `lookup_principal` lets the stream accept the session cookie.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from causeflow.api.credentials import principal_from_key, principal_from_token
from causeflow.auth import sessions as stored
from causeflow.auth.apikeys import get_key
from causeflow.auth.principal import Principal
from causeflow.auth.tokens import PortalLink
from causeflow.context import AppContext
from causeflow.errors import CauseFlowError
from causeflow.jsonutil import dumps, loads
from causeflow.runtime import Component, Stop

COOKIE = "cf_session"
ID_PREFIX = "ses_"


@dataclass(frozen=True)
class Session:
    id_hash: str
    tenant_id: str
    tenant_name: str
    who: str  # what the header shows: an email, a user or key id
    kind: str  # "api_key" | "user"
    is_admin: bool
    credential: str  # opened from its seal; never sent to the browser
    csrf_token: str
    expires_at_ms: int
    # a session opened by a portal link: its role ("viewer" | "admin"), else None
    portal: str | None = None

    @property
    def read_only(self) -> bool:
        """A portal viewer: its pages offer no form that changes anything."""
        return self.portal == "viewer"


def hash_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def new_session_id() -> str:
    # 256 random bits; `ids.new_id` is time-sortable and so partly guessable, which a bearer
    # secret must not be.
    return ID_PREFIX + secrets.token_urlsafe(32)


def session_ttl_seconds(ctx: AppContext) -> int:
    return ctx.settings.dashboard_session_ttl_seconds


async def resolve_credential(ctx: AppContext, credential: str) -> Principal:
    """The principal a credential stands for (raises Unauthorized when it is no longer valid)."""
    if credential.startswith("cflo_"):
        return await principal_from_key(ctx, credential)
    return await principal_from_token(ctx, credential, ctx.clock.now())


class LinkSpent(Exception):
    """A portal link that was opened before: it opens no second session."""


class LinkRevoked(Exception):
    """A portal link minted with an API key that was revoked since: it opens nothing."""


async def _key_live(conn: Any, tenant_id: str, key_id: str) -> bool:
    return await get_key(conn, tenant_id, key_id) is not None


async def create_session(
    ctx: AppContext,
    principal: Principal,
    credential: str,
    tenant_name: str,
    link: PortalLink | None = None,
) -> tuple[str, Session]:
    """Store a new session; returns the id for the cookie and the session.

    With `link`, the session is a portal session of the link's role, and the link's use is
    recorded in the same transaction (raises LinkSpent when it was used before)."""
    assert principal.tenant_id is not None
    now_ms = ctx.clock.now_ms()
    expires_ms = now_ms + session_ttl_seconds(ctx) * 1000
    if principal.expires_at is not None:
        # A session never outlives the credential it was opened with.
        expires_ms = min(expires_ms, int(principal.expires_at * 1000))
    session_id = new_session_id()
    csrf_token = secrets.token_urlsafe(32)
    record: dict[str, Any] = {
        "kind": principal.kind,
        "subject": principal.subject,
        "email": principal.email,
        "roles": sorted(principal.roles),
        "scopes": sorted(principal.scopes),
        "keyId": principal.key_id,
        "tenantName": tenant_name,
        "credential": ctx.keys.box.seal(credential),
        "portal": link.role if link else None,
        # the API key a portal link was minted with: the session stands only while it does
        "keyRef": link.key_id if link else None,
    }
    async with ctx.db.transaction() as tx:
        # Expired rows are swept here, a few at a time, rather than by another background job.
        await stored.delete_expired(tx, now_ms)
        if link is not None:
            first = await stored.record_link_use(
                tx,
                jti=link.jti,
                tenant_id=link.tenant_id,
                now_ms=now_ms,
                expires_at_ms=link.expires_at * 1000,
            )
            if not first:
                raise LinkSpent()
            if link.key_id is not None and not await _key_live(tx, link.tenant_id, link.key_id):
                raise LinkRevoked()
        await stored.insert_session(
            tx,
            id_hash=hash_id(session_id),
            tenant_id=principal.tenant_id,
            principal=dumps(record).decode(),
            csrf_token=csrf_token,
            created_at=now_ms,
            expires_at=expires_ms,
        )
    return session_id, _session(
        hash_id(session_id), principal.tenant_id, record, ctx, csrf_token, expires_ms
    )


def _session(
    id_hash: str,
    tenant_id: str,
    record: dict[str, Any],
    ctx: AppContext,
    csrf_token: str,
    expires_ms: int,
) -> Session:
    roles = set(record.get("roles") or [])
    scopes = set(record.get("scopes") or [])
    return Session(
        id_hash=id_hash,
        tenant_id=tenant_id,
        tenant_name=str(record.get("tenantName") or tenant_id),
        who=str(record.get("email") or record.get("subject") or ""),
        kind=str(record.get("kind") or ""),
        is_admin="admin" in roles or "admin" in scopes,
        credential=ctx.keys.box.open(str(record["credential"])),
        csrf_token=csrf_token,
        expires_at_ms=expires_ms,
        portal=_portal_role(record.get("portal")),
    )


def _portal_role(value: Any) -> str | None:
    return value if value in ("viewer", "admin") else None


async def load_session(ctx: AppContext, session_id: str | None) -> Session | None:
    """The live session behind a cookie value, or None (unknown, expired, unreadable)."""
    if not session_id or not session_id.startswith(ID_PREFIX) or len(session_id) > 200:
        return None
    id_hash = hash_id(session_id)
    async with ctx.db.read() as conn:
        row = await stored.session_row(conn, id_hash)
        if row is None or row.expires_at <= ctx.clock.now_ms():
            return None
        record = loads(row.principal)
        key_ref = record.get("keyRef")
        if isinstance(key_ref, str) and not await _key_live(conn, row.tenant_id, key_ref):
            return None  # a portal session whose link was minted with a key revoked since
    try:
        return _session(id_hash, row.tenant_id, record, ctx, row.csrf_token, row.expires_at)
    except (ValueError, KeyError):
        # Sealed under another secret key (CAUSEFLOW_SECRET_KEY changed): sign in again.
        return None


async def delete_session(ctx: AppContext, id_hash: str) -> None:
    async with ctx.db.transaction() as tx:
        await stored.delete_session(tx, id_hash)


async def lookup_principal(ctx: AppContext, session_id: str) -> Principal | None:
    """For the gateway: the principal of the session's stored credential, as it is now.

    The credential is resolved again (a revoked key or an expired token yields None), and the
    principal expires with the session and names it, so a stream opened with the cookie ends
    when the session does, by expiry or by signing out (the stream re-checks at each ping).
    """
    session = await load_session(ctx, session_id)
    if session is None or session.portal is not None:
        # A portal session serves its pages only; it opens no stream.
        return None
    try:
        principal = await resolve_credential(ctx, session.credential)
    except CauseFlowError:
        return None
    if principal.tenant_id != session.tenant_id:
        return None
    session_end = session.expires_at_ms / 1000
    expires = (
        session_end if principal.expires_at is None else min(principal.expires_at, session_end)
    )
    return dataclasses.replace(principal, expires_at=expires, session_id=session.id_hash)


def component() -> Component:
    """Registers `session_lookup`, through which the gateway accepts the session cookie."""

    async def start(ctx: AppContext) -> Stop:
        async def lookup(session_id: str) -> Principal | None:
            return await lookup_principal(ctx, session_id)

        ctx.session_lookup = lookup

        async def stop() -> None:
            ctx.session_lookup = None

        return stop

    return Component("dashboard_sessions", frozenset({"api"}), start)
