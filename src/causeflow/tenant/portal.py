"""Portal links: a short-lived, single-use URL that opens one tenant's dashboard pages (its
webhook subscriptions and deliveries) without an API key, as a viewer or as an admin.

`POST /v1/portal-links` is for a tenant's admin (its own tenant); `POST
/v1/tenants/{tenant_id}/portal-links` for the platform admin (any tenant); both routes are in
`tenant/router.py`. The link is a token
of the service (`auth/tokens.py`), shown once in the answer; `dashboard/portal.py` exchanges
it for a session.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Request, Response
from pydantic import BaseModel, ConfigDict, Field

from causeflow import ids
from causeflow.clock import ms_to_rfc3339
from causeflow.context import AppContext
from causeflow.errors import NotFound
from causeflow.tenant import service

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


def mint_link(
    request: Request,
    response: Response,
    ctx: AppContext,
    tenant_id: str,
    body: PortalLinkCreate,
    minted_by: str,
    key_id: str | None = None,
) -> dict[str, Any]:
    """The link's answer; `key_id`: the API key it was minted with (the link stands only while
    that key does)."""
    token, link = ctx.tokens.mint_portal_link(
        tenant_id=tenant_id,
        role=body.role,
        now=ctx.clock.now(),
        ttl=body.expiresIn,
        minted_by=minted_by,
        key_id=key_id,
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


async def check_tenant(ctx: AppContext, tenant_id: str) -> None:
    """404 unless the tenant exists."""
    if not ids.is_id(tenant_id, "ten"):  # nothing odd reaches SQL
        raise NotFound("no such tenant")
    async with ctx.db.read() as conn:
        await service.get_tenant_row(conn, tenant_id)
