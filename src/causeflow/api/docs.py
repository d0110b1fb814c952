"""The API reference pages (`/docs`, `/redoc`) served with their scripts from the service itself.

FastAPI's default pages load Swagger UI and ReDoc from a CDN (and ReDoc its fonts from Google),
so they break on a network without internet access and tell a third party who reads the docs.
Here the same pages (`get_swagger_ui_html`, `get_redoc_html`) point at `/docs/assets/…`, which
serves the files the `fastapi-offline` package ships. Each page carries a Content-Security-Policy
that admits scripts from this origin only (plus the page's own inline start-up script, by hash),
so an asset that would still come from elsewhere is refused by the browser.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources
from importlib.abc import Traversable

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.responses import HTMLResponse, Response

from causeflow.api.errors import error_response

ASSETS_PATH = "/docs/assets"
# The files the pages use, by name, with their content type; anything else is a 404.
ASSET_TYPES: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# No online validator badge: Swagger UI would otherwise load an image from swagger.io.
SWAGGER_PARAMETERS = {"validatorUrl": None}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def asset_dir() -> Traversable:
    """Where the installed `fastapi-offline` package keeps Swagger UI's and ReDoc's files."""
    return resources.files("fastapi_offline") / "static"


@functools.cache
def _asset(name: str) -> bytes | None:
    if name not in ASSET_TYPES:
        return None
    path = asset_dir() / name
    return path.read_bytes() if path.is_file() else None


def content_security_policy(html: str) -> str:
    """Scripts from this origin and the page's own inline scripts (by SHA-256), nothing else.

    Styles may be inline (both viewers set them from script), images may be `data:` URLs
    (Swagger UI's icons) and ReDoc runs its search in a `blob:` worker.
    """
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(html)
    ]
    return "; ".join(
        [
            "default-src 'self'",
            "script-src " + " ".join(["'self'", *hashes]),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def secured(page: HTMLResponse) -> HTMLResponse:
    """`page` with its CSP and the headers every page of the service carries."""
    html = bytes(page.body).decode("utf-8")
    page.headers["Content-Security-Policy"] = content_security_policy(html)
    page.headers["X-Content-Type-Options"] = "nosniff"
    page.headers["Referrer-Policy"] = "same-origin"
    return page


def install_docs(app: FastAPI) -> None:
    """Add `/docs`, `/docs/oauth2-redirect`, `/redoc` and their assets to an app created with
    `docs_url=None, redoc_url=None` (FastAPI's own CDN pages switched off)."""
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return secured(
            get_swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=root + redirect_url,
                swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                swagger_ui_parameters={**SWAGGER_PARAMETERS, **(app.swagger_ui_parameters or {})},
            )
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return secured(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return secured(
            get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                with_google_fonts=False,
            )
        )

    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        data = _asset(name)
        if data is None:
            return error_response(404, "not_found", "no such file")
        return Response(
            data,
            media_type=ASSET_TYPES[name],
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )
