"""Remediations of incidents and their `remediation.*` events, in the caller's transaction.

Proposing one that needs approval also requests the approval and moves the incident to
awaiting_approval; approving or rejecting it (directly, through its approval, or by the
approval's expiry) resolves the approval first, then the remediation, then moves the incident:
the events land in that order in one transaction. Every writer here first locks the tenant's
event-log head, so the rows it reads stay as read until it commits, and lock order is the same
for all of them (head, then approval, remediation, incident).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select, update

from causeflow import ids
from causeflow.clock import ms_to_rfc3339
from causeflow.db.conn import AnyRow, Conn
from causeflow.db.engine import Tx
from causeflow.db.lookup import tenant_row
from causeflow.errors import InvalidTransition
from causeflow.event.log import append_event, next_positions
from causeflow.incident.repository import require_incident
from causeflow.jsonutil import dumps_str, loads
from causeflow.remediation import approvals
from causeflow.remediation.lifecycle import check_move
from causeflow.remediation.tables import remediations


async def lock_tenant(tx: Tx, tenant_id: str) -> None:
    """Lock the tenant's event-log head until commit (it serializes with every append)."""
    await next_positions(tx, tenant_id, 0)


def remediation_view(row: AnyRow, approval: AnyRow | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "incidentId": row.incident_id,
        "title": row.title,
        "steps": loads(row.steps),
        "requiresApproval": bool(row.requires_approval),
        "status": row.status,
        "decidedBy": row.decided_by,
        "reason": row.reason,
        "outcome": row.outcome,
        "durationMs": row.duration_ms,
        "approval": approvals.approval_summary(approval) if approval is not None else None,
        "createdAt": ms_to_rfc3339(row.created_at),
        "updatedAt": ms_to_rfc3339(row.updated_at),
    }


async def _row(conn: Conn, tenant_id: str, remediation_id: str) -> AnyRow:
    return await tenant_row(
        conn, remediations, tenant_id, remediation_id, prefix="rem", what="remediation"
    )


async def get_remediation(conn: Conn, tenant_id: str, remediation_id: str) -> dict[str, Any]:
    row = await _row(conn, tenant_id, remediation_id)
    found = await approvals.approvals_of(conn, tenant_id, [row.id])
    return remediation_view(row, found.get(row.id))


async def list_remediations(
    conn: Conn, tenant_id: str, incident_id: str, *, after_id: str | None, limit: int
) -> list[dict[str, Any]]:
    """An incident's remediations, oldest first (404 for an incident not the tenant's)."""
    await require_incident(conn, tenant_id, incident_id)
    cond = [remediations.c.tenant_id == tenant_id, remediations.c.incident_id == incident_id]
    if after_id:
        cond.append(remediations.c.id > after_id)
    stmt = select(remediations).where(and_(*cond)).order_by(remediations.c.id).limit(limit)
    rows = (await conn.execute(stmt)).all()
    found = await approvals.approvals_of(conn, tenant_id, [r.id for r in rows])
    return [remediation_view(r, found.get(r.id)) for r in rows]


async def _auto_move(tx: Tx, tenant_id: str, incident_id: str, trigger: str, now_ms: int) -> None:
    from causeflow.incident.service import auto_move

    await auto_move(tx, tenant_id, incident_id, trigger, now_ms)


async def propose_remediation(
    tx: Tx,
    tenant_id: str,
    incident_id: str,
    *,
    title: str,
    steps: list[str],
    requires_approval: bool,
    approval_ttl_seconds: int,
    now_ms: int,
) -> dict[str, Any]:
    """`remediation.proposed`; with approval also `approval.requested` and the incident move."""
    await lock_tenant(tx, tenant_id)
    await require_incident(tx.conn, tenant_id, incident_id)
    remediation_id = ids.new_id("rem", now_ms)
    await tx.execute(
        remediations.insert().values(
            id=remediation_id,
            tenant_id=tenant_id,
            incident_id=incident_id,
            title=title,
            steps=dumps_str(steps),
            requires_approval=requires_approval,
            status="proposed",
            created_at=now_ms,
            updated_at=now_ms,
        )
    )
    await append_event(
        tx,
        tenant_id=tenant_id,
        event_type="remediation.proposed",
        now_ms=now_ms,
        data={
            "incidentId": incident_id,
            "remediationId": remediation_id,
            "title": title,
            "requiresApproval": requires_approval,
            "steps": steps,
        },
    )
    if requires_approval:
        await approvals.request_approval(
            tx,
            tenant_id,
            incident_id=incident_id,
            remediation_id=remediation_id,
            title=title,
            now_ms=now_ms,
            ttl_seconds=approval_ttl_seconds,
        )
        await _auto_move(tx, tenant_id, incident_id, "approval_requested", now_ms)
    return await get_remediation(tx.conn, tenant_id, remediation_id)


async def _set_status(tx: Tx, row: AnyRow, status: str, now_ms: int, **values: Any) -> None:
    """Move the remediation from the status it was read in; 409 if someone moved it first."""
    stmt = (
        update(remediations)
        .where(remediations.c.id == row.id, remediations.c.status == row.status)
        .values(status=status, updated_at=now_ms, **values)
    )
    if (await tx.execute(stmt)).rowcount != 1:
        raise InvalidTransition("the remediation changed meanwhile; read it again")


async def _resolve_pending_approval(
    tx: Tx, row: AnyRow, *, decision: str, actor: str, notes: str | None, now_ms: int
) -> None:
    pending = await approvals.pending_for_remediation(tx.conn, row.tenant_id, row.id)
    if pending is None:
        return
    approvals.check_answerable(pending, now_ms)
    won = await approvals.claim_approval(
        tx, pending, decision=decision, decided_by=actor, notes=notes, now_ms=now_ms
    )
    if not won:
        raise InvalidTransition("the approval was decided meanwhile; read it again")


async def approve_remediation(
    tx: Tx,
    tenant_id: str,
    remediation_id: str,
    *,
    actor: str,
    now_ms: int,
    notes: str | None = None,
) -> dict[str, Any]:
    """approval.resolved (if pending), remediation.approved, incident.status_changed."""
    await lock_tenant(tx, tenant_id)
    row = await _row(tx.conn, tenant_id, remediation_id)
    check_move(row.status, "approved", requires_approval=bool(row.requires_approval))
    await _resolve_pending_approval(
        tx, row, decision="approved", actor=actor, notes=notes, now_ms=now_ms
    )
    await _set_status(tx, row, "approved", now_ms, decided_by=actor)
    await append_event(
        tx,
        tenant_id=tenant_id,
        event_type="remediation.approved",
        now_ms=now_ms,
        data={"incidentId": row.incident_id, "remediationId": row.id, "approvedBy": actor},
    )
    await _auto_move(tx, tenant_id, row.incident_id, "approval_granted", now_ms)
    return await get_remediation(tx.conn, tenant_id, remediation_id)


async def reject_remediation(
    tx: Tx,
    tenant_id: str,
    remediation_id: str,
    *,
    actor: str,
    reason: str,
    now_ms: int,
    notes: str | None = None,
) -> dict[str, Any]:
    """approval.resolved (if pending), remediation.rejected, incident.status_changed."""
    await lock_tenant(tx, tenant_id)
    row = await _row(tx.conn, tenant_id, remediation_id)
    check_move(row.status, "rejected", requires_approval=bool(row.requires_approval))
    await _resolve_pending_approval(
        tx, row, decision="rejected", actor=actor, notes=notes if notes else reason, now_ms=now_ms
    )
    await _set_status(tx, row, "rejected", now_ms, decided_by=actor, reason=reason)
    await append_event(
        tx,
        tenant_id=tenant_id,
        event_type="remediation.rejected",
        now_ms=now_ms,
        data={
            "incidentId": row.incident_id,
            "remediationId": row.id,
            "rejectedBy": actor,
            "reason": reason,
        },
    )
    await _auto_move(tx, tenant_id, row.incident_id, "approval_rejected", now_ms)
    return await get_remediation(tx.conn, tenant_id, remediation_id)


async def expire_approval(tx: Tx, approval: AnyRow, now_ms: int) -> bool:
    """Expire one overdue approval: approval.resolved (expired), remediation.rejected
    (approval_expired) and the incident move. False if another decider got there first."""
    await lock_tenant(tx, approval.tenant_id)
    won = await approvals.claim_approval(
        tx, approval, decision="expired", decided_by=None, notes=None, now_ms=now_ms
    )
    if not won:
        return False
    row = await _row(tx.conn, approval.tenant_id, approval.remediation_id)
    if row.status != "proposed":
        # Cannot happen while approvals and remediations change together; never loop on it.
        return True
    await _set_status(tx, row, "rejected", now_ms, decided_by=None, reason="approval_expired")
    await append_event(
        tx,
        tenant_id=row.tenant_id,
        event_type="remediation.rejected",
        now_ms=now_ms,
        data={
            "incidentId": row.incident_id,
            "remediationId": row.id,
            "rejectedBy": None,
            "reason": "approval_expired",
        },
    )
    await _auto_move(tx, row.tenant_id, row.incident_id, "approval_expired", now_ms)
    return True


async def record_execution(
    tx: Tx, tenant_id: str, remediation_id: str, *, outcome: str, duration_ms: int, now_ms: int
) -> dict[str, Any]:
    """`remediation.executed` for an approved remediation (or one that needed no approval)."""
    await lock_tenant(tx, tenant_id)
    row = await _row(tx.conn, tenant_id, remediation_id)
    check_move(row.status, "executed", requires_approval=bool(row.requires_approval))
    await _set_status(tx, row, "executed", now_ms, outcome=outcome, duration_ms=duration_ms)
    await append_event(
        tx,
        tenant_id=tenant_id,
        event_type="remediation.executed",
        now_ms=now_ms,
        data={
            "incidentId": row.incident_id,
            "remediationId": row.id,
            "outcome": outcome,
            "durationMs": duration_ms,
        },
    )
    return await get_remediation(tx.conn, tenant_id, remediation_id)
