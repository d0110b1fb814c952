"""Portal links: a short-lived, single-use URL that opens one tenant's dashboard pages (its
webhook subscriptions and deliveries) without an API key, as a viewer or as an admin.

`POST /v1/portal-links` is for a tenant's admin (its own tenant); `POST
/v1/tenants/{tenant_id}/portal-links` for the platform admin (any tenant). The link is a token
of the service (`auth/tokens.py`), shown once in the answer; `dashboard/portal.py` exchanges
it for a session.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from causeflow import ids
from causeflow.api.deps import Admin, Ctx, PlatformAdmin, tenant_of
from causeflow.api.routing import JsonRoute
from causeflow.clock import ms_to_rfc3339
from causeflow.context import AppContext
from causeflow.errors import NotFound
from causeflow.tenant import service

router = APIRouter(tags=["portal-links"], route_class=JsonRoute)

PORTAL_PATH = "/ui/portal"
DEFAULT_TTL = 300
MAX_TTL = 3600


class PortalLinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["viewer", "admin"] = Field(
        description="viewer: read only; admin: may also create, change and delete subscriptions"
    )
    expiresIn: int = Field(
        default=DEFAULT_TTL,
        ge=30,
        le=MAX_TTL,
        strict=True,
        description="seconds until the link can no longer be opened (30 to 3600)",
    )


class PortalLinkCreated(BaseModel):
    url: str = Field(description="opens the dashboard once; shown only in this response")
    tenantId: str
    role: str
    expiresAt: str


def _mint(
    request: Request,
    response: Response,
    ctx: AppContext,
    tenant_id: str,
    body: PortalLinkCreate,
    minted_by: str,
) -> dict[str, Any]:
    token, link = ctx.tokens.mint_portal_link(
        tenant_id=tenant_id,
        role=body.role,
        now=ctx.clock.now(),
        ttl=body.expiresIn,
        minted_by=minted_by,
    )
    # The base URL as the caller reached the service (through trusted proxies' headers).
    base = str(request.base_url).rstrip("/")
    response.headers["Cache-Control"] = "no-store"
    return {
        "url": f"{base}{PORTAL_PATH}?link={token}",
        "tenantId": tenant_id,
        "role": link.role,
        "expiresAt": ms_to_rfc3339(link.expires_at * 1000),
    }


@router.post("/v1/portal-links", status_code=201, response_model=PortalLinkCreated)
async def create_portal_link(
    body: PortalLinkCreate, request: Request, response: Response, ctx: Ctx, principal: Admin
) -> dict[str, Any]:
    """A portal link to the caller's own tenant (tenant admins)."""
    return _mint(request, response, ctx, tenant_of(principal), body, principal.actor)


@router.post(
    "/v1/tenants/{tenant_id}/portal-links", status_code=201, response_model=PortalLinkCreated
)
async def create_tenant_portal_link(
    tenant_id: str,
    body: PortalLinkCreate,
    request: Request,
    response: Response,
    ctx: Ctx,
    _p: PlatformAdmin,
) -> dict[str, Any]:
    """A portal link to any tenant (the platform admin); 404 for a tenant that does not exist."""
    if not ids.is_id(tenant_id, "ten"):  # nothing odd reaches SQL
        raise NotFound("no such tenant")
    async with ctx.db.read() as conn:
        await service.get_tenant_row(conn, tenant_id)
    return _mint(request, response, ctx, tenant_id, body, "platform")
