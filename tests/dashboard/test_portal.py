"""Portal links exchanged for dashboard sessions: single use, expiry on the service's clock,
tampered and foreign tokens, what a viewer and an admin session reach, framing and cookies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from causeflow.auth.principal import Principal
from causeflow.auth.tokens import PORTAL_AUDIENCE
from causeflow.dashboard.render import SECURITY_HEADERS
from tests.support.clock import FrozenClock
from tests.support.dashboard import csrf_token, set_cookie_header, sign_in
from tests.support.inproc import Service, Tenant, make_settings, running_service

pytestmark = pytest.mark.integration

HOOK = "http://127.0.0.1:9/hook"
REFUSED_TEXT = "expired or invalid"


@pytest.fixture
def clock() -> FrozenClock:
    # Two hours behind: PyJWT refuses a token issued in its (real) future, so the test clock
    # may move forward by up to that much.
    return FrozenClock(int(time.time() * 1000) - 7_200_000)


@pytest.fixture
async def svc(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Service]:
    async with running_service(make_settings(tmp_path), clock) as service:
        yield service


@pytest.fixture
async def acme(svc: Service) -> Tenant:
    return await svc.tenant("acme")


def _browser(svc: Service, base_url: str = "http://cf.test") -> httpx.AsyncClient:
    """A fresh client on the same app: its own cookies, like another browser."""
    return httpx.AsyncClient(transport=svc.client._transport, base_url=base_url)


async def _link(svc: Service, tenant: Tenant, role: str, expires_in: int = 300) -> str:
    response = await svc.client.post(
        "/v1/portal-links",
        headers=tenant.admin_headers,
        json={"role": role, "expiresIn": expires_in},
    )
    assert response.status_code == 201, response.text
    url = urlsplit(response.json()["url"])
    return f"{url.path}?{url.query}"


def _token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["link"][0]


async def _subscription(svc: Service, tenant: Tenant, url: str = HOOK) -> dict[str, Any]:
    response = await svc.client.post(
        "/v1/webhook-subscriptions",
        headers=tenant.admin_headers,
        json={"url": url, "events": ["incident.created"]},
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _open(browser: httpx.AsyncClient, link: str) -> httpx.Response:
    return await browser.get(link)


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text[:300]
    assert REFUSED_TEXT in response.text
    assert "set-cookie" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_viewer_link_opens_the_tenants_subscriptions_read_only(
    svc: Service, acme: Tenant
) -> None:
    globex = await svc.tenant("globex")
    ours = await _subscription(svc, acme, "http://127.0.0.1:9/ours")
    theirs = await _subscription(svc, globex, "http://127.0.0.1:9/theirs")
    async with _browser(svc) as browser:
        opened = await _open(browser, await _link(svc, acme, "viewer"))
        assert opened.status_code == 303 and opened.headers["location"] == "/ui/subscriptions"
        cookie = set_cookie_header(opened, "cf_session").lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
        assert "max-age=3599" in cookie or "max-age=3600" in cookie  # the session, not the link

        page = await browser.get("/ui/subscriptions")
        assert page.status_code == 200
        assert "/ours" in page.text and "/theirs" not in page.text
        assert "Create subscription" not in page.text
        assert 'href="/ui/incidents"' not in page.text  # the portal's pages only
        detail = await browser.get(f"/ui/subscriptions/{ours['id']}")
        assert detail.status_code == 200
        assert "Delete" not in detail.text and "Rotate secret" not in detail.text
        token = csrf_token(detail.text)  # the sign-out form's

        # Every change is refused, whatever the form says.
        for path, form in (
            ("/ui/subscriptions", {"url": HOOK, "events": "*"}),
            (f"/ui/subscriptions/{ours['id']}/delete", {}),
            (f"/ui/subscriptions/{ours['id']}/enabled", {"enabled": "false"}),
            (f"/ui/subscriptions/{ours['id']}/rotate-secret", {}),
            ("/ui/incidents", {"title": "x", "severity": "low"}),
        ):
            refused = await browser.post(path, data={**form, "csrf_token": token})
            assert refused.status_code in (403, 404), (path, refused.status_code)
        listed = await svc.client.get("/v1/webhook-subscriptions", headers=acme.key_headers)
        assert [s["id"] for s in listed.json()["items"]] == [ours["id"]]
        assert listed.json()["items"][0]["enabled"] is True

        # Other tenants' ids and the pages outside the portal are not found.
        assert (await browser.get(f"/ui/subscriptions/{theirs['id']}")).status_code == 404
        for path in ("/ui/incidents", "/ui/approvals", "/ui/events", "/ui/events/evt_x"):
            assert (await browser.get(path)).status_code == 404, path
        home = await browser.get("/ui")
        assert home.headers["location"] == "/ui/subscriptions"
        # The cookie is no credential for the API, nor for the stream.
        assert (await browser.get("/v1/webhook-subscriptions")).status_code == 401
        stream = await browser.get("/v1/notifications/stream")
        assert stream.status_code == 401

        out = await browser.post("/ui/logout", data={"csrf_token": token})
        assert out.status_code == 303
        assert (await browser.get("/ui/subscriptions")).status_code == 303


async def test_an_admin_link_manages_subscriptions(svc: Service, acme: Tenant) -> None:
    async with _browser(svc) as browser:
        assert (await _open(browser, await _link(svc, acme, "admin"))).status_code == 303
        page = await browser.get("/ui/subscriptions")
        assert "Create subscription" in page.text
        created = await browser.post(
            "/ui/subscriptions",
            data={"url": HOOK, "events": "*", "csrf_token": csrf_token(page.text)},
        )
        assert created.status_code == 201, created.text[:300]
        listed = await svc.client.get("/v1/webhook-subscriptions", headers=acme.key_headers)
        (sub,) = listed.json()["items"]
        deleted = await browser.post(
            f"/ui/subscriptions/{sub['id']}/delete", data={"csrf_token": csrf_token(page.text)}
        )
        assert deleted.status_code == 303
        # Still only the portal's pages.
        assert (await browser.get("/ui/incidents")).status_code == 404


async def test_a_link_opens_one_session_only(svc: Service, acme: Tenant) -> None:
    link = await _link(svc, acme, "viewer")
    async with _browser(svc) as first, _browser(svc) as second:
        assert (await _open(first, link)).status_code == 303
        _assert_refused(await _open(second, link))
        # The browser that opened it goes on with its session (a reloaded frame, the back
        # button); no second session is opened.
        again = await _open(first, link)
        assert again.status_code == 303 and "set-cookie" not in again.headers
        assert (await first.get("/ui/subscriptions")).status_code == 200
        # A session of another tenant or one signed in with a key does not count.
        globex = await svc.tenant("globex")
        async with _browser(svc) as third:
            assert (await _open(third, await _link(svc, globex, "admin"))).status_code == 303
            _assert_refused(await _open(third, link))
        async with _browser(svc) as fourth:
            assert (await sign_in(fourth, acme.api_key)).status_code == 303
            _assert_refused(await _open(fourth, link))


async def test_expiry_is_read_on_the_service_clock(
    svc: Service, acme: Tenant, clock: FrozenClock
) -> None:
    link = await _link(svc, acme, "viewer", expires_in=60)
    clock.advance(61)
    async with _browser(svc) as browser:
        _assert_refused(await _open(browser, link))
    # The session a link opened ends after the portal session's lifetime.
    async with _browser(svc) as browser:
        assert (await _open(browser, await _link(svc, acme, "admin"))).status_code == 303
        clock.advance(3599)
        assert (await browser.get("/ui/subscriptions")).status_code == 200
        clock.advance(2)
        gone = await browser.get("/ui/subscriptions")
        assert gone.status_code == 303 and gone.headers["location"].startswith("/ui/login")


async def test_tampered_and_foreign_tokens_are_refused(svc: Service, acme: Tenant) -> None:
    ctx = svc.ctx
    now = ctx.clock.now()
    good = _token(await _link(svc, acme, "viewer"))
    header, payload, signature = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False}, audience=PORTAL_AUDIENCE)
    principal = Principal(kind="api_key", subject="key", tenant_id=acme.id)

    def signed(secret: str, **changes: Any) -> str:
        return jwt.encode({**claims, **changes}, secret, algorithm="HS256")

    secret = ctx.keys.jwt_secret
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    bad = {
        "signature flipped": f"{header}.{payload}.{flipped}",
        "another secret": signed("not-the-service-secret-" * 2),
        "the API's audience": ctx.tokens.mint(tenant_id=acme.id, role="admin", now=now, ttl=60),
        "a stream ticket": ctx.tokens.mint_ticket(principal, now=now, ttl=60),
        "platform admin token": ctx.tokens.mint_platform_admin(now=now, ttl=60),
        "a role it may not carry": signed(secret, role="platform_admin", jti="x" * 22),
        "no tenant": signed(secret, tenant_id="", jti="y" * 22),
        "no jti": signed(secret, jti=None),
        "alg none": jwt.encode({**claims, "jti": "z" * 22}, None, algorithm="none"),
        "garbage": "not.a.token",
        "empty": "",
        "very long": "a" * 5000,
        "non-ascii": "é" * 10,
    }
    async with _browser(svc) as browser:
        for why, token in bad.items():
            response = await browser.get("/ui/portal", params={"link": token})
            assert response.status_code == 401, why
            assert REFUSED_TEXT in response.text, why
        assert (await browser.get("/ui/portal")).status_code == 401
        # None of these spent the real link.
        assert (await browser.get("/ui/portal", params={"link": good})).status_code == 303


async def test_a_link_to_a_foreign_tenant_id_reaches_nothing(svc: Service, acme: Tenant) -> None:
    """A correctly signed link naming a tenant that does not exist opens no session."""
    token, _ = svc.ctx.tokens.mint_portal_link(
        tenant_id="ten_01JZZZZZZZZZZZZZZZZZZZZZZZ",
        role="admin",
        now=svc.ctx.clock.now(),
        ttl=60,
        minted_by="test",
    )
    async with _browser(svc) as browser:
        _assert_refused(await browser.get("/ui/portal", params={"link": token}))


async def test_frames_are_refused_unless_the_setting_names_the_embedding_site(
    svc: Service, acme: Tenant
) -> None:
    async with _browser(svc) as browser:
        await _open(browser, await _link(svc, acme, "viewer"))
        page = await browser.get("/ui/subscriptions")
        for name, value in SECURITY_HEADERS.items():
            assert page.headers[name] == value, name


async def test_portal_pages_are_framable_by_the_configured_sites(
    tmp_path: Path,
) -> None:
    settings = make_settings(
        tmp_path, portal_frame_ancestors="https://app.example.com  https://*.example.org"
    )
    async with running_service(settings) as svc:
        acme = await svc.tenant("acme")
        link = await _link(svc, acme, "viewer")
        async with _browser(svc, "https://cf.test") as browser:
            opened = await _open(browser, link)
            cookie = set_cookie_header(opened, "cf_session").lower()
            assert "samesite=none" in cookie and "secure" in cookie and "httponly" in cookie
            page = await browser.get("/ui/subscriptions")
            csp = page.headers["content-security-policy"]
            assert "frame-ancestors https://app.example.com https://*.example.org" in csp
            assert "x-frame-options" not in page.headers
        # Sessions signed in with a key, and the sign-in page, keep refusing frames.
        async with _browser(svc) as browser:
            login = await browser.get("/ui/login")
            assert login.headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
        # Over http the cookie cannot be SameSite=None (browsers want Secure with it).
        async with _browser(svc) as browser:
            opened = await _open(browser, await _link(svc, acme, "viewer"))
            assert "samesite=lax" in set_cookie_header(opened, "cf_session").lower()


async def test_a_used_link_is_forgotten_only_after_it_expired(
    svc: Service, acme: Tenant, clock: FrozenClock
) -> None:
    """Its record is swept with expired sessions, and by then the link is refused anyway."""
    link = await _link(svc, acme, "viewer", expires_in=30)
    async with _browser(svc) as browser:
        assert (await _open(browser, link)).status_code == 303
    clock.advance(31)
    async with _browser(svc) as browser:
        # Opening another link sweeps the expired record.
        assert (await _open(browser, await _link(svc, acme, "viewer"))).status_code == 303
        _assert_refused(await _open(browser, link))


async def test_two_visits_at_once_open_one_session_on_either_backend(
    service: Service, tenant: Tenant
) -> None:
    link = await _link(service, tenant, "admin")
    async with _browser(service) as first, _browser(service) as second:
        answers = await asyncio.gather(_open(first, link), _open(second, link))
    assert sorted(a.status_code for a in answers) == [303, 401]
    async with _browser(service) as third:
        _assert_refused(await _open(third, link))
