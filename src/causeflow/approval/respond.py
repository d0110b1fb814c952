"""A person's answer to an approval: it decides the approval and its remediation together.

It moves the remediation through the remediation service, which claims the approval
(`remediation/approvals.py`) in the same transaction.
"""

from __future__ import annotations

from typing import Any

from causeflow.db.engine import Tx
from causeflow.remediation import service as remediations
from causeflow.remediation.approvals import approval_view, check_answerable, get_approval_row


async def respond_approval(
    tx: Tx,
    tenant_id: str,
    approval_id: str,
    *,
    decision: str,
    actor: str,
    notes: str | None,
    now_ms: int,
) -> dict[str, Any]:
    """A person's answer: decides the approval and its remediation in the caller's transaction."""
    await remediations.lock_tenant(tx, tenant_id)
    row = await get_approval_row(tx.conn, tenant_id, approval_id)
    check_answerable(row, now_ms)
    if decision == "approved":
        await remediations.approve_remediation(
            tx, tenant_id, row.remediation_id, actor=actor, notes=notes, now_ms=now_ms
        )
    else:
        await remediations.reject_remediation(
            tx,
            tenant_id,
            row.remediation_id,
            actor=actor,
            reason=notes or "rejected by approver",
            notes=notes,
            now_ms=now_ms,
        )
    return approval_view(await get_approval_row(tx.conn, tenant_id, approval_id))
