"""What a running service believes about a request's origin, read from outside over HTTP.

A `causeflow serve` process shows the scheme it saw in the dashboard cookies' `Secure` flag,
and the client address it saw in the budget a refused inbound request is counted against
(`CAUSEFLOW_INGEST_REFUSED_RATE_LIMIT_PER_MINUTE`, one budget per address). These helpers read
both with a plain httpx client, so they work on a process reached directly or through a proxy.
Cookies are carried by hand: a `Secure` cookie set on a plain-http request (a trusted
`X-Forwarded-Proto: https`) would never be sent back by a cookie jar.
"""

from __future__ import annotations

import re
import time

import httpx

TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
LOGIN_COOKIE = "cf_login_csrf"
SESSION_COOKIE = "cf_session"


def set_cookie(response: httpx.Response, name: str) -> str:
    """The response's whole `Set-Cookie` header for `name`."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return header
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers.get_list('set-cookie')}")


def cookie_flags(header: str) -> set[str]:
    """The attributes of a `Set-Cookie` header, lower-cased (`secure`, `httponly`, …)."""
    return {part.strip().lower() for part in header.split(";")[1:]}


def cookie_value(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]


def sign_in(
    client: httpx.Client, credential: str, headers: dict[str, str] | None = None
) -> tuple[str, str]:
    """Sign in to the dashboard; the `Set-Cookie` headers of the login form and the session."""
    client.cookies.clear()  # every sign-in starts signed out
    form = client.get("/ui/login", headers=headers)
    assert form.status_code == 200, form.text
    login_cookie = set_cookie(form, LOGIN_COOKIE)
    match = TOKEN_RE.search(form.text)
    assert match, "the login page has no CSRF token"
    answer = client.post(
        "/ui/login",
        data={"csrf_token": match.group(1), "credential": credential, "next": "/ui"},
        headers={**(headers or {}), "Cookie": f"{LOGIN_COOKIE}={cookie_value(login_cookie)}"},
    )
    assert answer.status_code == 303, answer.text
    client.cookies.clear()
    return login_cookie, set_cookie(answer, SESSION_COOKIE)


def refused_budget(
    client: httpx.Client, tenant_id: str, headers: dict[str, str] | None = None
) -> tuple[int, int]:
    """Spend one unit of the caller's refused-inbound budget: (remaining, window reset).

    The request carries no key, so it is refused (401) and counted against the client address
    the service believes it came from.
    """
    resp = client.post(
        f"/v1/webhooks/{tenant_id}/custom",
        content=b'{"title": "no key"}',
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    assert resp.status_code == 401, resp.text
    return int(resp.headers["x-ratelimit-remaining"]), int(resp.headers["x-ratelimit-reset"])


def same_budget(
    client: httpx.Client, tenant_id: str, first: dict[str, str], second: dict[str, str]
) -> bool:
    """Whether a request sent with `first` headers and one sent with `second` are counted
    against one client address (callers use addresses no earlier request used).

    Budgets are one-minute windows: the pair is sent well inside one, so a reset between the
    two requests cannot pass for another address's budget.
    """
    into_window = time.time() % 60
    if into_window > 55:
        time.sleep(60.5 - into_window)
    before, reset_before = refused_budget(client, tenant_id, first)
    after, reset_after = refused_budget(client, tenant_id, second)
    assert reset_before == reset_after, "the pair straddled a rate-limit window"
    return after == before - 1
