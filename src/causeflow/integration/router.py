"""Integration endpoints: connect and disconnect (admins), read (admin/member, events:read)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from causeflow.api.deps import Admin, Ctx, Reader, tenant_of
from causeflow.api.pagination import PageParams, page, page_params
from causeflow.api.routing import JsonRoute
from causeflow.integration import service
from causeflow.integration.schemas import IntegrationCreate, IntegrationPage, IntegrationRead

router = APIRouter(tags=["integrations"], route_class=JsonRoute)


@router.post("/v1/integrations", status_code=201, response_model=IntegrationRead)
async def connect_integration(
    body: IntegrationCreate, ctx: Ctx, principal: Admin
) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await service.connect_integration(
            tx,
            tenant_of(principal),
            provider=body.provider,
            name=body.name,
            config=body.config,
            actor=principal.actor,
            box=ctx.keys.box,
            now_ms=ctx.clock.now_ms(),
        )


@router.get("/v1/integrations", response_model=IntegrationPage)
async def list_integrations(
    ctx: Ctx,
    principal: Reader,
    params: PageParams = Depends(page_params),
    status: Annotated[Literal["connected", "disconnected"] | None, Query()] = None,
) -> dict[str, Any]:
    after = params.after_key(str)
    async with ctx.db.read() as conn:
        rows = await service.list_integrations(
            conn,
            tenant_of(principal),
            status=status,
            after_id=after[0] if after else None,
            limit=params.limit + 1,
        )
    return page(rows, params.limit, lambda r: [r["id"]])


@router.get("/v1/integrations/{integration_id}", response_model=IntegrationRead)
async def get_integration(integration_id: str, ctx: Ctx, principal: Reader) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return await service.get_integration(conn, tenant_of(principal), integration_id)


@router.delete("/v1/integrations/{integration_id}", response_model=IntegrationRead)
async def disconnect_integration(integration_id: str, ctx: Ctx, principal: Admin) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        return await service.disconnect_integration(
            tx,
            tenant_of(principal),
            integration_id,
            actor=principal.actor,
            now_ms=ctx.clock.now_ms(),
        )
