"""Approvals of remediations: requesting one, resolving it exactly once, and reading them.

Every change to an approval goes through `claim_approval`, a conditional UPDATE on
`status = 'pending'`: of a response, a direct approve/reject of its remediation and the expiry
job racing for one approval, exactly one sees rowcount 1 and emits `approval.resolved`; the
others find it already decided. Callers hold the tenant's event-log head (see
`remediation.service.lock_tenant`), which also orders them with every other writer of the tenant.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select, update

from causeflow import ids
from causeflow.clock import ms_to_rfc3339
from causeflow.db.conn import AnyRow, Conn
from causeflow.db.engine import Tx
from causeflow.db.lookup import tenant_row
from causeflow.errors import Conflict, InvalidTransition
from causeflow.event.log import append_event
from causeflow.remediation.tables import approvals


def approval_view(row: AnyRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "incidentId": row.incident_id,
        "remediationId": row.remediation_id,
        "title": row.title,
        "status": row.status,
        "expiresAt": ms_to_rfc3339(row.expires_at),
        "decidedBy": row.decided_by,
        "notes": row.notes,
        "createdAt": ms_to_rfc3339(row.created_at),
        "decidedAt": ms_to_rfc3339(row.decided_at) if row.decided_at is not None else None,
    }


def approval_summary(row: AnyRow) -> dict[str, Any]:
    """What a remediation shows of its approval."""
    return {
        "id": row.id,
        "status": row.status,
        "expiresAt": ms_to_rfc3339(row.expires_at),
        "decidedBy": row.decided_by,
        "decidedAt": ms_to_rfc3339(row.decided_at) if row.decided_at is not None else None,
    }


async def get_approval_row(conn: Conn, tenant_id: str, approval_id: str) -> AnyRow:
    return await tenant_row(conn, approvals, tenant_id, approval_id, prefix="apr", what="approval")


async def list_pending(
    conn: Conn,
    tenant_id: str,
    *,
    now_ms: int,
    incident_id: str | None,
    after_id: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Pending approvals still answerable (not past their expiry), oldest first."""
    cond = [
        approvals.c.tenant_id == tenant_id,
        approvals.c.status == "pending",
        approvals.c.expires_at > now_ms,
    ]
    if incident_id:
        if not ids.is_id(incident_id, "inc"):
            return []
        cond.append(approvals.c.incident_id == incident_id)
    if after_id:
        cond.append(approvals.c.id > after_id)
    stmt = select(approvals).where(and_(*cond)).order_by(approvals.c.id).limit(limit)
    return [approval_view(r) for r in (await conn.execute(stmt)).all()]


async def overdue_approvals(conn: Conn, now_ms: int, limit: int) -> list[AnyRow]:
    """Pending approvals of every tenant whose expiry has come, soonest first."""
    stmt = (
        select(approvals)
        .where(approvals.c.status == "pending", approvals.c.expires_at <= now_ms)
        .order_by(approvals.c.expires_at, approvals.c.id)
        .limit(limit)
    )
    return list((await conn.execute(stmt)).all())


async def approvals_of(conn: Conn, tenant_id: str, remediation_ids: list[str]) -> dict[str, AnyRow]:
    """The approval row of each remediation that has one (a remediation has at most one)."""
    if not remediation_ids:
        return {}
    stmt = select(approvals).where(
        approvals.c.tenant_id == tenant_id, approvals.c.remediation_id.in_(remediation_ids)
    )
    return {r.remediation_id: r for r in (await conn.execute(stmt)).all()}


async def pending_for_remediation(conn: Conn, tenant_id: str, remediation_id: str) -> AnyRow | None:
    stmt = select(approvals).where(
        approvals.c.tenant_id == tenant_id,
        approvals.c.remediation_id == remediation_id,
        approvals.c.status == "pending",
    )
    return (await conn.execute(stmt)).first()


async def request_approval(
    tx: Tx,
    tenant_id: str,
    *,
    incident_id: str,
    remediation_id: str,
    title: str,
    now_ms: int,
    ttl_seconds: int,
) -> AnyRow:
    """A pending approval expiring `ttl_seconds` from now, and its `approval.requested`."""
    approval_id = ids.new_id("apr", now_ms)
    expires_at = now_ms + ttl_seconds * 1000
    await tx.execute(
        approvals.insert().values(
            id=approval_id,
            tenant_id=tenant_id,
            incident_id=incident_id,
            remediation_id=remediation_id,
            title=title,
            status="pending",
            expires_at=expires_at,
            created_at=now_ms,
        )
    )
    await append_event(
        tx,
        tenant_id=tenant_id,
        event_type="approval.requested",
        now_ms=now_ms,
        data={
            "approvalId": approval_id,
            "incidentId": incident_id,
            "remediationId": remediation_id,
            "title": title,
            "expiresAt": ms_to_rfc3339(expires_at),
        },
    )
    return await get_approval_row(tx.conn, tenant_id, approval_id)


def check_answerable(row: AnyRow, now_ms: int) -> None:
    """409 unless a person may still answer this approval."""
    if row.status != "pending":
        raise InvalidTransition(
            f"this approval is already {row.status}", details={"status": row.status}
        )
    if row.expires_at <= now_ms:
        raise Conflict(
            "this approval has expired", code="approval_expired", details={"status": "expired"}
        )


async def claim_approval(
    tx: Tx,
    row: AnyRow,
    *,
    decision: str,
    decided_by: str | None,
    notes: str | None,
    now_ms: int,
) -> bool:
    """Decide a pending approval and emit `approval.resolved`; False if it was not pending.

    The one claim statement: the WHERE clause re-checks `pending` at write time, so two deciders
    cannot both win (on PostgreSQL the loser waits for the winner's row lock, then re-evaluates
    the condition and matches nothing). Expiry also requires the deadline to have passed, and
    a person's answer that it has not.
    """
    due = approvals.c.expires_at <= now_ms
    stmt = (
        update(approvals)
        .where(
            approvals.c.id == row.id,  # this approval
            approvals.c.status == "pending",  # still undecided: the guard
            due if decision == "expired" else ~due,  # expiry only after, answers only before
        )
        .values(status=decision, decided_by=decided_by, notes=notes, decided_at=now_ms)
    )
    if (await tx.execute(stmt)).rowcount != 1:
        return False
    await append_event(
        tx,
        tenant_id=row.tenant_id,
        event_type="approval.resolved",
        now_ms=now_ms,
        data={
            "approvalId": row.id,
            "incidentId": row.incident_id,
            "remediationId": row.remediation_id,
            "decision": decision,
            "decidedBy": decided_by,
        },
    )
    return True
