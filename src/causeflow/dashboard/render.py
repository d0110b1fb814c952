"""Rendering for the dashboard: the Jinja2 environment (autoescape on), filters, headers.

Every dashboard response gets the same security headers: a CSP that admits only this origin's
files (no inline script or style anywhere), no sniffing, no framing (portal pages: the sites
`CAUSEFLOW_PORTAL_FRAME_ANCESTORS` names), same-origin referrers.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader
from starlette.responses import HTMLResponse, Response

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def pretty_json(value: Any) -> str:
    """Indented JSON as plain text; the template's autoescape makes it safe inside <pre>."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def short_time(value: Any) -> str:
    """`2026-11-27T08:42:53.123Z` -> `2026-11-27 08:42:53Z` (UTC, as the API gives it)."""
    if not isinstance(value, str) or "T" not in value:
        return "" if value is None else str(value)
    day, _, rest = value.partition("T")
    return f"{day} {rest[:8]}Z"


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("causeflow.dashboard", "templates"),
        autoescape=True,  # every value is text unless a template says otherwise (none do)
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty_json"] = pretty_json
    env.filters["short_time"] = short_time
    return env


def render_html(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = environment().get_template(template).render(**values)
    response = HTMLResponse(html, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def secure(response: Response, frame_ancestors: str = "") -> Response:
    """The security headers; `frame_ancestors` (portal pages only) lets those sites frame it."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if frame_ancestors:
        response.headers["Content-Security-Policy"] = SECURITY_HEADERS[
            "Content-Security-Policy"
        ].replace("frame-ancestors 'none'", "frame-ancestors " + frame_ancestors)
        # X-Frame-Options knows no list of sites; CSP frame-ancestors supersedes it.
        del response.headers["X-Frame-Options"]
    return response
