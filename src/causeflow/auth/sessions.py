"""The SQL of dashboard sessions (`sessions`), stored by the SHA-256 of their id.

What a session holds and how it is sealed is the dashboard's (`dashboard/sessions.py`); these
run in the caller's transaction or read connection.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, select

from causeflow.auth.tables import sessions
from causeflow.db.conn import AnyRow, Conn
from causeflow.db.engine import Tx


async def delete_expired(tx: Tx, now_ms: int) -> None:
    await tx.execute(delete(sessions).where(sessions.c.expires_at <= now_ms))


async def insert_session(
    tx: Tx,
    *,
    id_hash: str,
    tenant_id: str,
    principal: str,
    csrf_token: str,
    created_at: int,
    expires_at: int,
) -> None:
    await tx.execute(
        sessions.insert().values(
            id_hash=id_hash,
            tenant_id=tenant_id,
            principal=principal,
            csrf_token=csrf_token,
            created_at=created_at,
            expires_at=expires_at,
        )
    )


async def session_row(conn: Conn, id_hash: str) -> AnyRow | None:
    """The stored row (tenant_id, principal, csrf_token, expires_at, …), or None."""
    return (await conn.execute(select(sessions).where(sessions.c.id_hash == id_hash))).first()


async def delete_session(tx: Tx, id_hash: str) -> None:
    await tx.execute(delete(sessions).where(sessions.c.id_hash == id_hash))


# A portal link's first use is a row of its own here: keyed `link:<SHA-256 of its jti>` (a
# session's key is 64 hex characters, so no cookie ever finds it), kept until the link expires
# and swept with the expired sessions; by then the link is refused for its expiry anyway.
LINK_USE_PREFIX = "link:"


def link_use_key(jti: str) -> str:
    return LINK_USE_PREFIX + hashlib.sha256(jti.encode()).hexdigest()


async def record_link_use(
    tx: Tx, *, jti: str, tenant_id: str, now_ms: int, expires_at_ms: int
) -> bool:
    """Record a portal link's use; False when it was used before (the link is spent)."""
    key = link_use_key(jti)
    if await tx.scalar(select(sessions.c.id_hash).where(sessions.c.id_hash == key)) is not None:
        return False
    stmt = tx.db.dialect.insert_ignore(sessions, ["id_hash"]).values(
        id_hash=key,
        tenant_id=tenant_id,
        principal="{}",
        csrf_token="",
        created_at=now_ms,
        expires_at=expires_at_ms,
    )
    result = await tx.execute(stmt)
    return bool(result.rowcount)
