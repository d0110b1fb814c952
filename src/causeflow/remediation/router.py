"""Remediation endpoints: propose for an incident, read, approve/reject (admins), report execution.

Proposing and reporting execution are open to people (admin/member) and to machine producers
(`events:publish` keys); reading too, so an engine can see whether its plan was approved.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from causeflow.api.deps import Admin, Ctx, Producer, require, tenant_of
from causeflow.api.pagination import PageParams, page, page_params
from causeflow.api.routing import JsonRoute
from causeflow.auth.principal import Action, Principal
from causeflow.remediation import service
from causeflow.remediation.schemas import (
    RemediationCreate,
    RemediationExecuted,
    RemediationPage,
    RemediationRead,
    RemediationReject,
)

router = APIRouter(tags=["remediations"], route_class=JsonRoute)
ReaderOrProducer = Annotated[Principal, require(Action.READ, Action.PRODUCE)]


@router.post(
    "/v1/incidents/{incident_id}/remediations", status_code=201, response_model=RemediationRead
)
async def propose_remediation(
    incident_id: str, body: RemediationCreate, ctx: Ctx, principal: Producer
) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await service.propose_remediation(
            tx,
            tenant_of(principal),
            incident_id,
            title=body.title,
            steps=list(body.steps),
            requires_approval=body.requiresApproval,
            approval_ttl_seconds=ctx.settings.approval_ttl_seconds,
            now_ms=ctx.clock.now_ms(),
        )


@router.get("/v1/incidents/{incident_id}/remediations", response_model=RemediationPage)
async def list_remediations(
    incident_id: str,
    ctx: Ctx,
    principal: ReaderOrProducer,
    params: PageParams = Depends(page_params),
) -> dict[str, Any]:
    after = params.after_key(str)
    async with ctx.db.read() as conn:
        rows = await service.list_remediations(
            conn,
            tenant_of(principal),
            incident_id,
            after_id=after[0] if after else None,
            limit=params.limit + 1,
        )
    return page(rows, params.limit, lambda r: [r["id"]])


@router.get("/v1/remediations/{remediation_id}", response_model=RemediationRead)
async def get_remediation(
    remediation_id: str, ctx: Ctx, principal: ReaderOrProducer
) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return await service.get_remediation(conn, tenant_of(principal), remediation_id)


@router.post("/v1/remediations/{remediation_id}/approve", response_model=RemediationRead)
async def approve_remediation(remediation_id: str, ctx: Ctx, principal: Admin) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await service.approve_remediation(
            tx,
            tenant_of(principal),
            remediation_id,
            actor=principal.actor,
            now_ms=ctx.clock.now_ms(),
        )


@router.post("/v1/remediations/{remediation_id}/reject", response_model=RemediationRead)
async def reject_remediation(
    remediation_id: str, body: RemediationReject, ctx: Ctx, principal: Admin
) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await service.reject_remediation(
            tx,
            tenant_of(principal),
            remediation_id,
            actor=principal.actor,
            reason=body.reason,
            now_ms=ctx.clock.now_ms(),
        )


@router.post("/v1/remediations/{remediation_id}/executed", response_model=RemediationRead)
async def record_execution(
    remediation_id: str, body: RemediationExecuted, ctx: Ctx, principal: Producer
) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await service.record_execution(
            tx,
            tenant_of(principal),
            remediation_id,
            outcome=body.outcome,
            duration_ms=body.durationMs,
            now_ms=ctx.clock.now_ms(),
        )
