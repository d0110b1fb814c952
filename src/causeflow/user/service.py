"""Users of a tenant and their `user.*` events, in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.exc import IntegrityError

from causeflow import ids
from causeflow.clock import ms_to_rfc3339
from causeflow.db.conn import AnyRow, Conn
from causeflow.db.engine import Tx
from causeflow.errors import Conflict, NotFound
from causeflow.event.log import append_event
from causeflow.user.tables import users


def user_view(row: AnyRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "email": row.email,
        "name": row.name,
        "role": row.role,
        "createdAt": ms_to_rfc3339(row.created_at),
        "updatedAt": ms_to_rfc3339(row.updated_at),
    }


async def _get(conn: Conn, tenant_id: str, user_id: str) -> AnyRow:
    row = (
        await conn.execute(
            select(users).where(users.c.id == user_id, users.c.tenant_id == tenant_id)
        )
    ).first()
    if row is None:
        raise NotFound("no such user")
    return row


async def get_user(conn: Conn, tenant_id: str, user_id: str) -> dict[str, Any]:
    return user_view(await _get(conn, tenant_id, user_id))


async def list_users(
    conn: Conn, tenant_id: str, *, after_id: str | None, limit: int
) -> list[dict[str, Any]]:
    cond = [users.c.tenant_id == tenant_id]
    if after_id:
        cond.append(users.c.id > after_id)
    stmt = select(users).where(and_(*cond)).order_by(users.c.id).limit(limit)
    return [user_view(r) for r in (await conn.execute(stmt)).all()]


async def create_user(
    tx: Tx, tenant_id: str, *, email: str, name: str | None, role: str, now_ms: int
) -> dict[str, Any]:
    email = email.strip().lower()
    exists = (
        await tx.execute(
            select(users.c.id).where(users.c.tenant_id == tenant_id, users.c.email == email)
        )
    ).first()
    if exists:
        raise Conflict("a user with this email already exists", code="user_exists")
    user_id = ids.new_id("usr", now_ms)
    try:
        await tx.execute(
            users.insert().values(
                id=user_id,
                tenant_id=tenant_id,
                email=email,
                name=name,
                role=role,
                created_at=now_ms,
                updated_at=now_ms,
            )
        )
    except IntegrityError as exc:  # a concurrent insert of the same email
        raise Conflict("a user with this email already exists", code="user_exists") from exc
    await append_event(
        tx,
        tenant_id=tenant_id,
        event_type="user.created",
        now_ms=now_ms,
        data={"userId": user_id, "email": email, "role": role},
    )
    return user_view(await _get(tx.conn, tenant_id, user_id))


async def update_user(
    tx: Tx, tenant_id: str, user_id: str, *, name: str | None, role: str | None, now_ms: int
) -> dict[str, Any]:
    row = await _get(tx.conn, tenant_id, user_id)
    changes: dict[str, Any] = {}
    if name is not None and name != row.name:
        changes["name"] = name
    if role is not None and role != row.role:
        changes["role"] = role
    if changes:
        await tx.execute(
            update(users).where(users.c.id == user_id).values(**changes, updated_at=now_ms)
        )
        await append_event(
            tx,
            tenant_id=tenant_id,
            event_type="user.updated",
            now_ms=now_ms,
            data={"userId": user_id, "changes": changes},
        )
    return user_view(await _get(tx.conn, tenant_id, user_id))


async def delete_user(tx: Tx, tenant_id: str, user_id: str, now_ms: int) -> None:
    row = await _get(tx.conn, tenant_id, user_id)
    await tx.execute(delete(users).where(users.c.id == user_id, users.c.tenant_id == tenant_id))
    await append_event(
        tx,
        tenant_id=tenant_id,
        event_type="user.deleted",
        now_ms=now_ms,
        data={"userId": user_id, "email": row.email},
    )
