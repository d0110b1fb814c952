"""`GET /ui/portal?link=…`: a portal link exchanged for a dashboard session of its tenant.

The link (minted by `tenant/portal.py`) is verified, its single use recorded and a session
opened in one transaction; the session holds a token of the service for the link's tenant
and role (`viewer`: read only; `admin`), lasts `CAUSEFLOW_PORTAL_SESSION_TTL_SECONDS`, and
reaches only the subscription and delivery pages (`page.check_portal_reach`). A link that is
expired, tampered with, meant for another audience or used before gets one plain page (401)
that does not say which; only a browser that already holds the portal session of the link's
tenant goes on to its pages when it follows a spent link again (a reloaded frame).

The cookie: `SameSite=Lax` (the link is followed from another site, so `Strict` would not be
sent after the redirect); when framing is allowed (`CAUSEFLOW_PORTAL_FRAME_ANCESTORS`) and the
request came over https, `SameSite=None; Secure`, without which a browser keeps it out of a
frame on another site. Over plain http a framed portal therefore cannot keep its session.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from causeflow.dashboard.api import ApiError
from causeflow.dashboard.page import DashboardRoute, api_for, ctx_of, error_page
from causeflow.dashboard.sessions import (
    COOKIE,
    LinkRevoked,
    LinkSpent,
    create_session,
    load_session,
)
from causeflow.errors import CauseFlowError

router = APIRouter(route_class=DashboardRoute)

MAX_LINK_CHARS = 4096
REFUSED = "This link is expired or invalid. Ask for a new link where you found this one."


def _refused(request: Request) -> Response:
    return error_page(request, 401, "Link expired or invalid", REFUSED, "invalid_link")


async def _spent(request: Request, tenant_id: str) -> Response:
    """A link used before: refused, unless this browser holds the live portal session of its
    tenant (a frame reloaded, the back button), which it then simply goes on with."""
    held = await load_session(ctx_of(request), request.cookies.get(COOKIE))
    if held is not None and held.portal is not None and held.tenant_id == tenant_id:
        return RedirectResponse("/ui/subscriptions", 303)
    return _refused(request)


@router.get("/portal")
async def open_portal(request: Request) -> Response:
    request.state.portal_page = True  # framable like the pages it opens
    ctx = ctx_of(request)
    token = request.query_params.get("link") or ""
    if not token or len(token) > MAX_LINK_CHARS or not token.isascii():
        return _refused(request)
    try:
        link = ctx.tokens.portal_link(token, ctx.clock.now())
    except CauseFlowError:
        return _refused(request)
    settings = ctx.settings
    now = ctx.clock.now()
    credential = ctx.tokens.mint(
        tenant_id=link.tenant_id,
        role=link.role,
        now=now,
        ttl=settings.portal_session_ttl_seconds,
        subject=f"portal {link.role}",
    )
    try:
        tenant = await api_for(request, credential).get("/v1/tenant")
        principal = ctx.tokens.principal_from_jwt(credential, now)
        session_id, session = await create_session(
            ctx, principal, credential, str(tenant.get("name") or link.tenant_id), link
        )
    except LinkSpent:
        return await _spent(request, link.tenant_id)
    except (ApiError, CauseFlowError, LinkRevoked):
        return _refused(request)
    response = RedirectResponse("/ui/subscriptions", 303)
    framed = bool(settings.portal_frame_ancestors) and request.url.scheme == "https"
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=max(1, (session.expires_at_ms - ctx.clock.now_ms()) // 1000),
        path="/",
        httponly=True,
        samesite="none" if framed else "lax",
        secure=request.url.scheme == "https",
    )
    return response
