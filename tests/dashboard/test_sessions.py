"""Sign-in, sessions, sign-out, and the session cookie as a stream credential (no browser)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from causeflow.auth.tables import sessions
from causeflow.dashboard.sessions import COOKIE
from causeflow.jsonutil import loads
from tests.support.clock import FrozenClock
from tests.support.dashboard import csrf_token, set_cookie_header, sign_in
from tests.support.inproc import Service, Tenant, make_settings, running_service

pytestmark = pytest.mark.integration


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[tuple[Service, FrozenClock]]:
    clock = FrozenClock()
    async with running_service(make_settings(tmp_path), clock) as svc:
        yield svc, clock


@pytest.fixture
async def acme(sqlite_service: Service) -> Tenant:
    return await sqlite_service.tenant("acme")


async def session_rows(svc: Service) -> list[dict]:
    async with svc.ctx.db.read() as conn:
        return [dict(r._mapping) for r in (await conn.execute(select(sessions))).all()]


async def test_sign_in_with_an_api_key_sets_a_strict_http_only_cookie(
    sqlite_service: Service, acme: Tenant
) -> None:
    response = await sign_in(sqlite_service.client, acme.api_key, "/ui/subscriptions")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/subscriptions"
    cookie = set_cookie_header(response, COOKIE)
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/" in flags
    assert "secure" not in flags  # plain http here; https requests get Secure
    session_id = cookie.split(";")[0].split("=", 1)[1]

    rows = await session_rows(sqlite_service)
    assert len(rows) == 1
    row = rows[0]
    assert row["id_hash"] == hashlib.sha256(session_id.encode()).hexdigest()
    assert row["tenant_id"] == acme.id
    # The credential is kept sealed, never in clear, and the id itself is not stored.
    assert acme.api_key not in row["principal"]
    assert session_id not in str(row)
    assert sqlite_service.ctx.keys.box.open(loads(row["principal"])["credential"]) == acme.api_key

    page = await sqlite_service.client.get("/ui/subscriptions")
    assert page.status_code == 200
    assert "acme" in page.text


async def test_https_requests_get_a_secure_cookie(sqlite_service: Service, acme: Tenant) -> None:
    client = sqlite_service.client
    form = await client.get("https://cf.test/ui/login")
    response = await client.post(
        "https://cf.test/ui/login",
        data={"csrf_token": csrf_token(form.text), "credential": acme.api_key},
    )
    assert response.status_code == 303
    assert "secure" in [p.strip().lower() for p in set_cookie_header(response, COOKIE).split(";")]


async def test_wrong_or_underprivileged_credentials_are_refused(
    sqlite_service: Service, acme: Tenant
) -> None:
    bad = await sign_in(sqlite_service.client, "cflo_" + "0" * 64)
    assert bad.status_code == 401
    assert "not valid" in bad.text
    ingest_only = await sign_in(sqlite_service.client, acme.ingest_key)
    assert ingest_only.status_code == 403
    assert "may not read the tenant" in ingest_only.text
    assert await session_rows(sqlite_service) == []
    assert COOKIE not in sqlite_service.client.cookies


async def test_sign_in_with_a_jwt_expires_with_the_token(
    sqlite_service: Service, acme: Tenant
) -> None:
    token = sqlite_service.token(acme, "member", ttl=600)["Authorization"].split()[1]
    response = await sign_in(sqlite_service.client, token)
    assert response.status_code == 303
    [row] = await session_rows(sqlite_service)
    assert row["expires_at"] <= sqlite_service.ctx.clock.now_ms() + 600_000
    assert loads(row["principal"])["roles"] == ["member"]


async def test_sign_in_needs_the_login_csrf_token(sqlite_service: Service, acme: Tenant) -> None:
    client = sqlite_service.client
    await client.get("/ui/login")
    missing = await client.post("/ui/login", data={"credential": acme.api_key})
    assert missing.status_code == 403
    wrong = await client.post("/ui/login", data={"credential": acme.api_key, "csrf_token": "x"})
    assert wrong.status_code == 403
    assert await session_rows(sqlite_service) == []


async def test_redirect_after_sign_in_stays_on_the_dashboard(
    sqlite_service: Service, acme: Tenant
) -> None:
    response = await sign_in(sqlite_service.client, acme.api_key, "//evil.example/ui")
    assert response.headers["location"] == "/ui"


async def test_pages_without_a_session_go_to_sign_in(sqlite_service: Service) -> None:
    response = await sqlite_service.client.get("/ui/incidents?status=open")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=/ui/incidents%3Fstatus%3Dopen"
    sqlite_service.client.cookies.set(COOKIE, "ses_forged")
    forged = await sqlite_service.client.get("/ui/incidents")
    assert forged.status_code == 303


async def test_sign_out_deletes_the_session(sqlite_service: Service, acme: Tenant) -> None:
    client = sqlite_service.client
    await sign_in(client, acme.api_key)
    session_id = client.cookies[COOKIE]
    page = await client.get("/ui/incidents")
    refused = await client.post("/ui/logout")  # no token
    assert refused.status_code == 403
    assert len(await session_rows(sqlite_service)) == 1

    response = await client.post("/ui/logout", data={"csrf_token": csrf_token(page.text)})
    assert response.status_code == 303
    assert await session_rows(sqlite_service) == []
    lookup = sqlite_service.ctx.session_lookup
    assert await lookup(session_id) is None
    client.cookies.set(COOKIE, session_id)
    again = await client.get("/ui/incidents")
    assert again.status_code == 303


async def test_session_lookup_resolves_the_stored_credential(
    clocked: tuple[Service, FrozenClock],
) -> None:
    svc, clock = clocked
    acme = await svc.tenant("acme")
    await sign_in(svc.client, acme.api_key)
    session_id = svc.client.cookies[COOKIE]
    lookup = svc.ctx.session_lookup

    principal = await lookup(session_id)
    assert principal is not None
    assert principal.tenant_id == acme.id
    assert principal.kind == "api_key"
    assert "events:read" in principal.scopes
    # The principal ends with the session, so a stream opened with the cookie ends too.
    [row] = await session_rows(svc)
    assert principal.expires_at == row["expires_at"] / 1000
    assert await lookup("ses_unknown") is None
    assert await lookup("not-even-a-session") is None

    clock.advance(row["expires_at"] / 1000 - clock.now() + 1)
    assert await lookup(session_id) is None
    expired_page = await svc.client.get("/ui/incidents")
    assert expired_page.status_code == 303


async def test_a_revoked_key_ends_its_sessions(sqlite_service: Service, acme: Tenant) -> None:
    client = sqlite_service.client
    await sign_in(client, acme.api_key)
    session_id = client.cookies[COOKIE]
    keys = (await client.get("/v1/api-keys", headers=acme.admin_headers)).json()["items"]
    key_id = next(k["id"] for k in keys if k["name"] == "default")
    revoked = await client.delete(f"/v1/api-keys/{key_id}", headers=acme.admin_headers)
    assert revoked.status_code == 204

    assert await sqlite_service.ctx.session_lookup(session_id) is None
    page = await client.get("/ui/subscriptions")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/ui/login")
    assert await session_rows(sqlite_service) == []
