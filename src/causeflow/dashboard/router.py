"""The dashboard at `/ui`: sign-in and sign-out, static files, and the pages' routers.

Pages are server-rendered from the public JSON API, called in-process with the signed-in
user's credential (see `dashboard.api`); the browser holds only the `cf_session` cookie.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from causeflow.dashboard import csrf
from causeflow.dashboard.api import ApiClient, ApiError
from causeflow.dashboard.events_pages import router as events_router
from causeflow.dashboard.incident_pages import router as incidents_router
from causeflow.dashboard.page import (
    DashboardRoute,
    SignedIn,
    client_of,
    ctx_of,
    error_page,
    safe_next,
)
from causeflow.dashboard.portal import router as portal_router
from causeflow.dashboard.render import render_html
from causeflow.dashboard.sessions import (
    COOKIE,
    create_session,
    delete_session,
    load_session,
    resolve_credential,
)
from causeflow.dashboard.webhook_pages import router as webhooks_router
from causeflow.errors import CauseFlowError

router = APIRouter(prefix="/ui", route_class=DashboardRoute, include_in_schema=False)

STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
MAX_CREDENTIAL_CHARS = 8192
_CREDENTIAL_TEXT = re.compile(r"[\x21-\x7e]+")


@functools.cache
def _static_file(name: str) -> bytes | None:
    if "/" in name or name.startswith(".") or not name.endswith(tuple(STATIC_TYPES)):
        return None
    path = resources.files("causeflow.dashboard") / "static" / name
    return path.read_bytes() if path.is_file() else None


@router.get("/static/{name}")
async def static_file(name: str, request: Request) -> Response:
    data = _static_file(name)
    if data is None:
        return error_page(request, 404, "Not found", "There is no such file.", "not_found")
    media = STATIC_TYPES["." + name.rsplit(".", 1)[-1]]
    return Response(data, media_type=media, headers={"Cache-Control": "public, max-age=300"})


@router.get("")
async def home(page: SignedIn) -> Response:
    return RedirectResponse("/ui/subscriptions" if page.session.portal else "/ui/incidents", 303)


def _login_page(
    request: Request, token: str, error: str | None = None, status: int = 200
) -> Response:
    response = render_html(
        "login.html",
        status,
        session=None,
        csrf_token=token,
        nav=(),
        next=safe_next(request.query_params.get("next")),
        error=error,
        notice="",
    )
    _set_cookie(request, response, csrf.LOGIN_COOKIE, token, max_age=3600, path="/ui/login")
    return response


def _set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int, path: str = "/"
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@router.get("/login")
async def login_form(request: Request) -> Response:
    if await load_session(ctx_of(request), request.cookies.get(COOKIE)) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), 303)
    token = request.cookies.get(csrf.LOGIN_COOKIE) or csrf.new_token()
    return _login_page(request, token)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    expected = request.cookies.get(csrf.LOGIN_COOKIE)
    csrf.check(expected, form.get(csrf.FIELD))
    assert expected is not None
    credential = form.get("credential")
    credential = credential.strip() if isinstance(credential, str) else ""
    if not credential or len(credential) > MAX_CREDENTIAL_CHARS:
        return _login_page(request, expected, "Paste an API key or a token.", 400)
    if not _CREDENTIAL_TEXT.fullmatch(credential):
        # API keys and tokens are printable ASCII; anything else (accented letters, spaces,
        # control characters) cannot be one, nor travel in an Authorization header.
        return _login_page(
            request,
            expected,
            "That API key or token is not valid: it holds characters no API key or token has.",
            401,
        )
    ctx = ctx_of(request)
    api = ApiClient(request.app, credential, client=client_of(request), scheme=request.url.scheme)
    try:
        # The credential must be able to read its tenant: the same check any client meets.
        tenant = await api.get("/v1/tenant")
        principal = await resolve_credential(ctx, credential)
    except ApiError as exc:
        if exc.status == 403:
            message = "This credential may not read the tenant (it needs the admin or member"
            message += " role, or an API key with the events:read scope)."
        elif exc.status == 401:
            message = "That API key or token is not valid: " + exc.message
        else:
            message = f"Sign-in failed: {exc.message}"
        return _login_page(request, expected, message, 401 if exc.status == 401 else 403)
    except CauseFlowError as exc:
        return _login_page(request, expected, f"Sign-in failed: {exc.message}", 401)
    session_id, session = await create_session(
        ctx, principal, credential, str(tenant.get("name") or tenant.get("id") or "")
    )
    response = RedirectResponse(safe_next(form.get("next")), 303)
    max_age = max(1, (session.expires_at_ms - ctx.clock.now_ms()) // 1000)
    _set_cookie(request, response, COOKIE, session_id, max_age=max_age)
    response.delete_cookie(csrf.LOGIN_COOKIE, path="/ui/login")
    return response


@router.post("/logout")
async def logout(page: SignedIn) -> Response:
    await page.form()
    await delete_session(page.ctx, page.session.id_hash)
    response = RedirectResponse("/ui/login", 303)
    response.delete_cookie(COOKIE, path="/")
    return response


router.include_router(events_router)
router.include_router(webhooks_router)
router.include_router(incidents_router)
router.include_router(portal_router)
