"""Approval endpoints (docs/reference.md §7.5): pending ones (admin/member), responses (admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from causeflow.api.deps import Admin, Ctx, Reader, tenant_of
from causeflow.api.pagination import PageParams, page, page_params
from causeflow.api.routing import JsonRoute
from causeflow.approval.respond import respond_approval
from causeflow.approval.schemas import ApprovalPage, ApprovalRead, ApprovalRespond
from causeflow.remediation import approvals as service

router = APIRouter(tags=["approvals"], route_class=JsonRoute)


@router.get("/v1/notifications/approvals/pending", response_model=ApprovalPage)
async def list_pending_approvals(
    ctx: Ctx,
    principal: Reader,
    params: PageParams = Depends(page_params),
    incidentId: Annotated[str | None, Query(max_length=64)] = None,  # noqa: N803
) -> dict[str, Any]:
    after = params.after_key(str)
    async with ctx.db.read() as conn:
        rows = await service.list_pending(
            conn,
            tenant_of(principal),
            now_ms=ctx.clock.now_ms(),
            incident_id=incidentId,
            after_id=after[0] if after else None,
            limit=params.limit + 1,
        )
    return page(rows, params.limit, lambda r: [r["id"]])


@router.get("/v1/notifications/approvals/{approval_id}", response_model=ApprovalRead)
async def get_approval(approval_id: str, ctx: Ctx, principal: Reader) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        row = await service.get_approval_row(conn, tenant_of(principal), approval_id)
    return service.approval_view(row)


@router.post("/v1/notifications/approvals/{approval_id}/respond", response_model=ApprovalRead)
async def respond_to_approval(
    approval_id: str, body: ApprovalRespond, ctx: Ctx, principal: Admin
) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await respond_approval(
            tx,
            tenant_of(principal),
            approval_id,
            decision=body.decision,
            actor=principal.actor,
            notes=body.notes,
            now_ms=ctx.clock.now_ms(),
        )
