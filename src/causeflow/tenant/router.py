"""Tenant endpoints: `/v1/tenants` (platform admin) and `/v1/tenant` (the caller's own), each
tenant's limits (`/v1/tenants/{tenant_id}/limits`, `/v1/tenant/limits`), and portal links to a
tenant's pages (`/v1/portal-links`, `/v1/tenants/{tenant_id}/portal-links`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from causeflow.api.deps import Admin, Ctx, PlatformAdmin, Reader, tenant_of
from causeflow.api.pagination import PageParams, page, page_params
from causeflow.api.routing import JsonRoute
from causeflow.auth import apikeys
from causeflow.db.conn import Conn
from causeflow.errors import NotFound
from causeflow.ratelimit.limits import BY_WIRE, Stored
from causeflow.ratelimit.limits import view as limits_view
from causeflow.tenant import plans, portal, service
from causeflow.tenant.schemas import (
    LimitsUpdate,
    TenantCreate,
    TenantCreated,
    TenantLimitsRead,
    TenantPage,
    TenantPlanUpdate,
    TenantRead,
    TenantUpdate,
)

router = APIRouter(tags=["tenants"], route_class=JsonRoute)


@router.post("/v1/tenants", status_code=201, response_model=TenantCreated)
async def create_tenant(body: TenantCreate, ctx: Ctx, _p: PlatformAdmin) -> dict[str, Any]:
    now = ctx.clock.now_ms()
    async with ctx.db.transaction() as tx:
        tenant = await service.create_tenant(
            tx, name=body.name, plan=body.plan or ctx.settings.default_plan, now_ms=now
        )
        _, key = await apikeys.create_key(
            tx,
            tenant_id=tenant["id"],
            name="default",
            now_ms=now,
            box=ctx.keys.box,
            scopes=["admin", "events:publish", "events:read", "alerts:ingest"],
        )
    return {**tenant, "apiKey": key}


@router.get("/v1/tenants", response_model=TenantPage)
async def list_tenants(
    ctx: Ctx, _p: PlatformAdmin, params: PageParams = Depends(page_params)
) -> dict[str, Any]:
    after = params.after_key(str)
    async with ctx.db.read() as conn:
        rows = await service.list_tenants(
            conn, after_id=after[0] if after else None, limit=params.limit + 1
        )
    return page(rows, params.limit, lambda t: [t["id"]])


@router.patch("/v1/tenants/{tenant_id}", response_model=TenantRead)
async def update_any_tenant(
    tenant_id: str, body: TenantPlanUpdate, ctx: Ctx, _p: PlatformAdmin
) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        out = await service.update_tenant(
            tx,
            tenant_id,
            box=ctx.keys.box,
            now_ms=ctx.clock.now_ms(),
            name=body.name,
            plan=body.plan,
        )
    ctx.forget_plan(tenant_id)
    return out


@router.get("/v1/tenant", response_model=TenantRead)
async def get_own_tenant(ctx: Ctx, principal: Reader) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        return service.tenant_view(await service.get_tenant_row(conn, tenant_of(principal)))


@router.patch("/v1/tenant", response_model=TenantRead)
async def update_own_tenant(body: TenantUpdate, ctx: Ctx, principal: Admin) -> dict[str, Any]:
    inbound = body.inbound.model_dump(exclude_unset=True) if body.inbound else None
    async with ctx.db.transaction() as tx:
        return await service.update_tenant(
            tx,
            tenant_of(principal),
            box=ctx.keys.box,
            now_ms=ctx.clock.now_ms(),
            name=body.name,
            inbound=inbound,
        )


async def _stored_limits(conn: Conn, tenant_id: str) -> Stored:
    stored = await plans.read_limits(conn, tenant_id)
    if stored is None:
        raise NotFound("no such tenant")
    return stored


@router.get("/v1/tenants/{tenant_id}/limits", response_model=TenantLimitsRead)
async def get_tenant_limits(tenant_id: str, ctx: Ctx, _p: PlatformAdmin) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        stored = await _stored_limits(conn, tenant_id)
    return limits_view(ctx.settings, tenant_id, stored)


@router.put(
    "/v1/tenants/{tenant_id}/limits",
    response_model=TenantLimitsRead,
    description="Set some of a tenant's limits: a field left out stays, null resets it to the "
    "default (the plan's figure or the setting's).",
)
async def put_tenant_limits(
    tenant_id: str, body: LimitsUpdate, ctx: Ctx, _p: PlatformAdmin
) -> dict[str, Any]:
    changes = {BY_WIRE[k].name: v for k, v in body.model_dump(exclude_unset=True).items()}
    async with ctx.db.transaction() as tx:
        await _stored_limits(tx, tenant_id)
        await plans.write_limits(tx, ctx.db.dialect, tenant_id, changes, ctx.clock.now_ms())
        stored = await _stored_limits(tx, tenant_id)
    ctx.forget_limits(tenant_id)
    return limits_view(ctx.settings, tenant_id, stored)


@router.get("/v1/tenant/limits", response_model=TenantLimitsRead)
async def get_own_limits(ctx: Ctx, principal: Reader) -> dict[str, Any]:
    tenant_id = tenant_of(principal)
    async with ctx.db.read() as conn:
        stored = await _stored_limits(conn, tenant_id)
    return limits_view(ctx.settings, tenant_id, stored)


@router.post("/v1/portal-links", status_code=201, response_model=portal.PortalLinkCreated)
async def create_portal_link(
    body: portal.PortalLinkCreate, request: Request, response: Response, ctx: Ctx, principal: Admin
) -> dict[str, Any]:
    """A portal link to the caller's own tenant (tenant admins)."""
    return portal.mint_link(
        request, response, ctx, tenant_of(principal), body, principal.actor, principal.key_id
    )


@router.post(
    "/v1/tenants/{tenant_id}/portal-links", status_code=201, response_model=portal.PortalLinkCreated
)
async def create_tenant_portal_link(
    tenant_id: str,
    body: portal.PortalLinkCreate,
    request: Request,
    response: Response,
    ctx: Ctx,
    _p: PlatformAdmin,
) -> dict[str, Any]:
    """A portal link to any tenant (the platform admin); 404 for a tenant that does not exist."""
    await portal.check_tenant(ctx, tenant_id)
    return portal.mint_link(request, response, ctx, tenant_id, body, "platform")
