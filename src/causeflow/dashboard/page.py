"""What every signed-in dashboard handler gets: the session, an API client, render helpers.

`DashboardRoute` wraps each handler: it turns "no session" into a redirect to the sign-in
page, a refused CSRF token into 403, a body that cannot be read as a form into 400, an API
answer the page did not handle into an error page, and puts the security headers on every
response.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from causeflow.context import AppContext
from causeflow.dashboard import csrf
from causeflow.dashboard.api import ApiClient, ApiError
from causeflow.dashboard.render import render_html, secure
from causeflow.dashboard.sessions import COOKIE, Session, delete_session, load_session

logger = logging.getLogger(__name__)

NAV = (
    ("incidents", "/ui/incidents", "Incidents"),
    ("approvals", "/ui/approvals", "Approvals"),
    ("events", "/ui/events", "Live events"),
    ("subscriptions", "/ui/subscriptions", "Subscriptions"),
    ("deliveries", "/ui/deliveries", "Deliveries"),
)


# The pages a portal session reaches: a tenant's subscriptions and deliveries (and signing out).
PORTAL_NAV = tuple(item for item in NAV if item[0] in ("subscriptions", "deliveries"))
PORTAL_PREFIXES = ("/ui/subscriptions", "/ui/deliveries")


def nav_for(session: Session | None) -> tuple[tuple[str, str, str], ...]:
    return PORTAL_NAV if session is not None and session.portal else NAV


class PageRefused(Exception):
    """A page this session may not see (404) or a change it may not make (403)."""

    def __init__(self, status: int, title: str, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message, self.code = status, title, message, code


def check_portal_reach(session: Session, method: str, path: str) -> None:
    """A portal session reaches only its pages; a viewer's changes are refused (its API
    credential, role `viewer`, is refused every write as well)."""
    if session.portal is None or path == "/ui/logout":
        return
    if path != "/ui" and not any(path == p or path.startswith(p + "/") for p in PORTAL_PREFIXES):
        raise PageRefused(404, "Not found", "There is no such page.", "not_found")
    if session.read_only and method not in ("GET", "HEAD"):
        raise PageRefused(403, "Not allowed", "This is a read-only view.", "forbidden")


class LoginRequired(Exception):
    """No live session (or its credential stopped working): go to the sign-in page."""

    def __init__(self, next_path: str = "/ui") -> None:
        super().__init__(next_path)
        self.next_path = next_path


def safe_next(value: object, default: str = "/ui") -> str:
    """Only our own pages are redirect targets (no `//host`, no other scheme)."""
    if isinstance(value, str) and value.startswith("/ui") and "//" not in value:
        if "\\" not in value and "\n" not in value and "\r" not in value:
            return value
    return default


def login_redirect(next_path: str) -> RedirectResponse:
    return RedirectResponse("/ui/login?next=" + quote(safe_next(next_path), safe="/"), 303)


@dataclass
class Page:
    request: Request
    ctx: AppContext
    session: Session
    api: ApiClient

    async def form(self) -> FormData:
        """The posted form, after its CSRF token is checked against the session's."""
        form = await self.request.form()
        csrf.check(self.session.csrf_token, form.get(csrf.FIELD))
        return form

    async def attempt(self, call: Awaitable[Any]) -> tuple[Any, ApiError | None]:
        """The API's answer, or the error for the page to show (a 401 still ends the session)."""
        try:
            return await call, None
        except ApiError as exc:
            if exc.status == 401:
                raise
            return None, exc

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        notice = self.request.query_params.get("notice")
        values.setdefault("notice", NOTICES.get(notice or "", ""))
        values.setdefault("count", _int(self.request.query_params.get("n")))
        values.setdefault("error", None)
        return render_html(
            template,
            status,
            session=self.session,
            csrf_token=self.session.csrf_token,
            nav=nav_for(self.session),
            **values,
        )

    def redirect(self, path: str, notice: str | None = None, **params: Any) -> RedirectResponse:
        query = {k: v for k, v in {"notice": notice, **params}.items() if v is not None}
        if query:
            path += ("&" if "?" in path else "?") + urlencode(query)
        return RedirectResponse(path, 303)


# Messages a redirect may name; fixed text, so nothing from the URL is echoed back.
NOTICES: dict[str, str] = {
    "created": "Created.",
    "saved": "Saved.",
    "deleted": "Deleted.",
    "enabled": "Subscription enabled.",
    "disabled": "Subscription disabled.",
    "test-sent": "Test event queued; it appears below once the worker picks it up.",
    "retry-queued": "One more attempt was queued.",
    "recovered": "Failed deliveries scheduled again: {n}.",
    "replayed": "Events scheduled for delivery again: {n}.",
    "status-changed": "Status changed.",
    "approved": "Approved.",
    "rejected": "Rejected.",
}


def _int(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 10 else 0


def ctx_of(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def client_of(request: Request) -> tuple[str, int] | None:
    client = request.scope.get("client")
    return (str(client[0]), int(client[1])) if client else None


def api_for(request: Request, credential: str) -> ApiClient:
    return ApiClient(request.app, credential, client=client_of(request), scheme=request.url.scheme)


async def current_page(request: Request) -> Page:
    ctx = ctx_of(request)
    session = await load_session(ctx, request.cookies.get(COOKIE))
    if session is None:
        target = request.url.path
        if request.method != "GET":
            target = "/ui"
        elif request.url.query:
            target += "?" + request.url.query
        raise LoginRequired(target)
    request.state.dashboard_session = session
    check_portal_reach(session, request.method, request.url.path)
    return Page(request, ctx, session, api_for(request, session.credential))


SignedIn = Annotated[Page, Depends(current_page)]


def error_page(request: Request, status: int, title: str, message: str, code: str = "") -> Response:
    session: Session | None = getattr(request.state, "dashboard_session", None)
    return render_html(
        "error.html",
        status,
        session=session,
        csrf_token=session.csrf_token if session else "",
        nav=nav_for(session),
        title=title,
        message=message,
        code=code,
        notice="",
        error=None,
    )


class DashboardRoute(APIRoute):
    """Every dashboard route: failures become pages, every response gets the headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginRequired as exc:
                response = login_redirect(exc.next_path)
            except csrf.CsrfRefused as exc:
                response = error_page(request, 403, "Request refused", str(exc), "csrf_failed")
            except PageRefused as exc:
                response = error_page(request, exc.status, exc.title, exc.message, exc.code)
            except ApiError as exc:
                response = await _api_failure(request, exc)
            except HTTPException as exc:
                if exc.status_code >= 500:
                    raise
                # The framework refusing the request itself: a form body it cannot read (a
                # multipart body without its boundary, too many fields). The client's mistake.
                response = error_page(
                    request,
                    exc.status_code,
                    "Request refused",
                    "The form could not be read; reload the page and try again.",
                    "bad_request",
                )
            except Exception:
                # A bug in a page still answers with a page (and the headers), never a trace.
                logger.exception("dashboard page %s failed", request.url.path)
                response = error_page(
                    request, 500, "Something went wrong", "The page failed; try again.", ""
                )
            return secure(response, frame_ancestors(request))

        return run


def frame_ancestors(request: Request) -> str:
    """Who may frame this response: nobody, except for portal pages when the setting names
    the embedding sites (`CAUSEFLOW_PORTAL_FRAME_ANCESTORS`)."""
    session: Session | None = getattr(request.state, "dashboard_session", None)
    portal = getattr(request.state, "portal_page", False) or (session and session.portal)
    return ctx_of(request).settings.portal_frame_ancestors if portal else ""


async def _api_failure(request: Request, exc: ApiError) -> Response:
    session: Session | None = getattr(request.state, "dashboard_session", None)
    if exc.status == 401 and session is not None:
        # The credential behind the session was revoked or expired: the session is over.
        await delete_session(ctx_of(request), session.id_hash)
        response = login_redirect(request.url.path if request.method == "GET" else "/ui")
        response.delete_cookie(COOKIE, path="/")
        return response
    if exc.status >= 500:
        logger.warning("API call from the dashboard failed: %s", exc)
    title = ERROR_TITLES.get(exc.status, "The API refused this")
    return error_page(request, exc.status, title, exc.message, exc.code)


ERROR_TITLES = {
    403: "Not allowed",
    404: "Not found",
    409: "Not possible right now",
    422: "Not accepted",
    429: "Too many requests",
}
