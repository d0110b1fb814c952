"""The SQL of dashboard sessions (`sessions`), stored by the SHA-256 of their id.

What a session holds and how it is sealed is the dashboard's (`dashboard/sessions.py`); these
run in the caller's transaction or read connection.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from causeflow.auth.tables import sessions
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


async def session_row(conn: Any, id_hash: str) -> Any:
    """The stored row (tenant_id, principal, csrf_token, expires_at, …), or None."""
    return (await conn.execute(select(sessions).where(sessions.c.id_hash == id_hash))).first()


async def delete_session(tx: Tx, id_hash: str) -> None:
    await tx.execute(delete(sessions).where(sessions.c.id_hash == id_hash))
