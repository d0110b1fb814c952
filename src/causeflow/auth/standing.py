"""Whether the credential behind a principal still stands.

A stream is authenticated once, when it opens, and may then stay open for hours; meanwhile its
credential can end: an API key revoked, a dashboard session signed out or expired, a token past
its expiry. A stream ticket names what it was minted from (the key id, the dashboard session,
and an expiry no later than the minting token's), so it stands exactly as long as that does.

`load` reads the store with no cache: one query for every distinct key and one for every
distinct session of a set of principals (in chunks), so a revocation committed by any process
is seen by the next check in every process. The stream checks when it opens and at each
keepalive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from causeflow.auth.principal import Principal
from causeflow.auth.tables import api_keys, sessions
from causeflow.db.engine import Database

# Ids per query: well under every driver's limit on bound parameters.
CHUNK = 500

EXPIRED = "credential expired"
REVOKED = "credential revoked"
SIGNED_OUT = "session ended"

_LIVE_KEYS = select(api_keys.c.id, api_keys.c.tenant_id).where(
    api_keys.c.id.in_(bindparam("b_ids", expanding=True)), api_keys.c.revoked_at.is_(None)
)
_LIVE_SESSIONS = select(sessions.c.id_hash, sessions.c.tenant_id).where(
    sessions.c.id_hash.in_(bindparam("b_ids", expanding=True)),
    sessions.c.expires_at > bindparam("b_now"),
)


@dataclass(frozen=True)
class Standing:
    """The keys and sessions, among those asked about, that still stand (with their tenant)."""

    keys: frozenset[tuple[str, str]]
    sessions: frozenset[tuple[str, str]]

    def ended(self, principal: Principal, now: float) -> str | None:
        """Why `principal` no longer stands, or None while it does."""
        if principal.expires_at is not None and principal.expires_at <= now:
            return EXPIRED
        tenant = principal.tenant_id or ""
        if principal.key_id is not None and (principal.key_id, tenant) not in self.keys:
            return REVOKED
        if principal.session_id is not None and (principal.session_id, tenant) not in self.sessions:
            return SIGNED_OUT
        return None


async def load(db: Database, principals: Iterable[Principal], now_ms: int) -> Standing:
    key_ids: set[str] = set()
    session_ids: set[str] = set()
    for principal in principals:
        if principal.key_id is not None:
            key_ids.add(principal.key_id)
        if principal.session_id is not None:
            session_ids.add(principal.session_id)
    keys: set[tuple[str, str]] = set()
    live_sessions: set[tuple[str, str]] = set()
    if not key_ids and not session_ids:
        return Standing(frozenset(), frozenset())
    async with db.read() as conn:
        for chunk in _chunks(sorted(key_ids)):
            rows = (await conn.execute(_LIVE_KEYS, {"b_ids": chunk})).all()
            keys.update((row.id, row.tenant_id) for row in rows)
        for chunk in _chunks(sorted(session_ids)):
            params = {"b_ids": chunk, "b_now": now_ms}
            rows = (await conn.execute(_LIVE_SESSIONS, params)).all()
            live_sessions.update((row.id_hash, row.tenant_id) for row in rows)
    return Standing(frozenset(keys), frozenset(live_sessions))


async def ended(db: Database, principal: Principal, now_ms: int) -> str | None:
    """Why one principal's credential no longer stands (read from the store), or None."""
    standing = await load(db, (principal,), now_ms)
    return standing.ended(principal, now_ms / 1000)


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]
