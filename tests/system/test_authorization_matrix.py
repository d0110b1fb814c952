"""Who may call what: every route of the app against every kind of credential, judged by one
policy table.

`POLICY` names, for each (method, path template) of the route table, who is let in: a set of
the credential kinds below (everyone else must get 401 or 403 in the error shape, whatever the
body), `OPEN` (anyone; a credential that is not valid is still refused with 401 on `/v1`),
`PAGE` (a dashboard page: only the session cookie; anyone else is sent to the sign-in page) or
`SIGN_IN` (the dashboard's sign-in form, judged by the credential posted in it: it opens a
session for whoever may read the tenant) or `LINK` (the portal's link exchange: its one
credential is a portal link in the URL, which no caller here holds, so every one gets 401 and
no cookie). A route of the app missing from the table fails the
test, so a new route cannot go unjudged. An admitted caller may still get any other 4xx
(bodies here are small, ids may be gone): what is checked is that the route decided who may
call it, and never with a 5xx.

Each creating POST of the API is also sent by every caller with an `Idempotency-Key` another
caller (the first admitted one) already used for the same route and body: only that caller
gets the stored answer back, everyone else is judged as without the key.

The rules, as documented: tenant admins (JWT role `admin`, API key scope `admin`) read and
write their tenant's data; members (role `member`) read it and work on incidents and
remediations; `events:read` keys read (and stream); `events:publish` keys publish, propose and
report remediations and feed triggers; `alerts:ingest` keys only post alerts; the platform
admin (the service's own token only) manages tenants and nothing else; stream tickets and the
dashboard's session cookie are credentials for the stream alone (and the cookie for the
dashboard's pages); a session opened by a portal link is neither, and reaches only the
subscription and delivery pages (a viewer's changes refused). Tokens of an external identity
provider carry the tenant roles only.

One service per backend; all cases run in one test and every failure is reported at once.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.routing import iter_route_contexts
from jwt.algorithms import RSAAlgorithm

from causeflow.clock import ms_to_rfc3339
from tests.support.dashboard import csrf_token, sign_in
from tests.support.inproc import Service, Tenant, make_settings, running_service

pytestmark = pytest.mark.integration

# --- the kinds of credential -------------------------------------------------------------

PLATFORM = "platform admin token"
ADMIN_JWT = "tenant admin token"
MEMBER_JWT = "member token"
KEY_ADMIN = "admin key"
KEY_PUBLISH = "events:publish key"
KEY_READ = "events:read key"
KEY_INGEST = "alerts:ingest key"
TICKET = "stream ticket (?token=)"
TICKET_BEARER = "stream ticket as Bearer"
SESSION = "dashboard session cookie"
PORTAL_VIEWER = "portal link's viewer session cookie"
PORTAL_ADMIN = "portal link's admin session cookie"
REVOKED = "revoked admin key"
EXPIRED = "expired admin token"
IDP_ADMIN = "external admin token"
IDP_MEMBER = "external member token"
IDP_PLATFORM = "external token claiming platform_admin"
IDP_PLATFORM_TENANT = "external token claiming platform_admin, with a tenant"
NOBODY = "no credential"

EVERYONE = (
    PLATFORM,
    ADMIN_JWT,
    MEMBER_JWT,
    KEY_ADMIN,
    KEY_PUBLISH,
    KEY_READ,
    KEY_INGEST,
    TICKET,
    TICKET_BEARER,
    SESSION,
    PORTAL_VIEWER,
    PORTAL_ADMIN,
    REVOKED,
    EXPIRED,
    IDP_ADMIN,
    IDP_MEMBER,
    IDP_PLATFORM,
    IDP_PLATFORM_TENANT,
    NOBODY,
)

# --- the policy ---------------------------------------------------------------------------

OPEN = "open"  # anyone, with or without a credential
PAGE = "page"  # a dashboard page: the session cookie, else a redirect to the sign-in page
SIGN_IN = "sign-in"  # the sign-in form: a session for the credential posted, if it may read
LINK = "portal link"  # the portal: its credential is the link alone; every caller here gets 401

ADMINS = frozenset({ADMIN_JWT, KEY_ADMIN, IDP_ADMIN})
READERS = ADMINS | {MEMBER_JWT, IDP_MEMBER, KEY_READ}
OPERATORS = ADMINS | {MEMBER_JWT, IDP_MEMBER}  # members work on incidents and remediations
PRODUCERS = frozenset({KEY_PUBLISH})  # machine producers (an investigation engine)
PUBLISHERS = ADMINS | PRODUCERS
STREAMERS = READERS | {TICKET, SESSION}
# Credentials refused wherever they are presented as one (401, before any route is chosen).
INVALID = frozenset({TICKET_BEARER, REVOKED, EXPIRED, IDP_PLATFORM})
TENANT_MANAGERS = frozenset({PLATFORM})
# Sessions opened by portal links: no API or stream credential; on `PAGE` routes they reach the
# subscription and delivery pages only (elsewhere 404), and a viewer changes nothing (403).
PORTAL_SESSIONS = frozenset({PORTAL_VIEWER, PORTAL_ADMIN})
PORTAL_PAGES = ("/ui/subscriptions", "/ui/deliveries")
INGESTERS = frozenset({KEY_INGEST})

Rule = frozenset[str] | str

SUBS = "/v1/webhook-subscriptions"
SUB = SUBS + "/{subscription_id}"
UI_SUB = "/ui/subscriptions/{sub_id}"

POLICY: dict[tuple[str, str], Rule] = {
    # operations and documents
    ("GET", "/"): OPEN,  # a redirect to the dashboard
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/metrics"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/docs/oauth2-redirect"): OPEN,
    ("GET", "/docs/assets/{name}"): OPEN,  # Swagger UI's and ReDoc's files
    ("GET", "/redoc"): OPEN,
    # inbound alerts: a key of the tenant in the path with the alerts:ingest scope
    ("POST", "/v1/webhooks/{tenant_id}/{provider}"): INGESTERS,
    # the event catalog is public; the log and its stream are the tenant's
    ("GET", "/v1/event-types"): OPEN,
    ("GET", "/v1/event-types/{name}"): OPEN,
    ("POST", "/v1/events"): PUBLISHERS,
    ("POST", "/v1/events/batch"): PUBLISHERS,
    ("GET", "/v1/events"): READERS,
    ("GET", "/v1/notifications"): READERS,
    ("POST", "/v1/notifications/stream-tickets"): READERS,
    ("GET", "/v1/notifications/stream"): STREAMERS,
    # webhook subscriptions and deliveries: admins write, readers read
    ("POST", SUBS): ADMINS,
    ("GET", SUBS): READERS,
    ("GET", SUB): READERS,
    ("PATCH", SUB): ADMINS,
    ("DELETE", SUB): ADMINS,
    ("POST", SUB + "/rotate-secret"): ADMINS,
    ("POST", SUB + "/test"): ADMINS,
    ("GET", SUB + "/deliveries"): READERS,
    ("GET", "/v1/deliveries/{delivery_id}"): READERS,
    ("GET", "/v1/deliveries"): READERS,
    ("GET", SUB + "/stats"): READERS,
    ("GET", SUB + "/messages"): READERS,
    ("POST", "/v1/deliveries/{delivery_id}/retry"): ADMINS,
    ("POST", SUB + "/recover"): ADMINS,
    ("POST", SUB + "/replay"): ADMINS,
    # incidents and remediations
    ("POST", "/v1/incidents"): OPERATORS,
    ("GET", "/v1/incidents"): READERS,
    ("GET", "/v1/incidents/{incident_id}"): READERS,
    ("PATCH", "/v1/incidents/{incident_id}"): OPERATORS,
    ("POST", "/v1/incidents/{incident_id}/remediations"): OPERATORS | PRODUCERS,
    ("GET", "/v1/incidents/{incident_id}/remediations"): READERS | PRODUCERS,
    ("GET", "/v1/remediations/{remediation_id}"): READERS | PRODUCERS,
    ("POST", "/v1/remediations/{remediation_id}/approve"): ADMINS,
    ("POST", "/v1/remediations/{remediation_id}/reject"): ADMINS,
    ("POST", "/v1/remediations/{remediation_id}/executed"): OPERATORS | PRODUCERS,
    ("GET", "/v1/notifications/approvals/pending"): READERS,
    ("GET", "/v1/notifications/approvals/{approval_id}"): READERS,
    ("POST", "/v1/notifications/approvals/{approval_id}/respond"): ADMINS,
    # integrations and triggers
    ("POST", "/v1/integrations"): ADMINS,
    ("GET", "/v1/integrations"): READERS,
    ("GET", "/v1/integrations/{integration_id}"): READERS,
    ("DELETE", "/v1/integrations/{integration_id}"): ADMINS,
    ("POST", "/v1/triggers"): ADMINS,
    ("GET", "/v1/triggers"): READERS,
    ("GET", "/v1/triggers/{trigger_id}"): READERS,
    ("DELETE", "/v1/triggers/{trigger_id}"): ADMINS,
    ("POST", "/v1/triggers/{trigger_id}/events"): ADMINS | PRODUCERS,
    # tenants: the platform admin manages all; a tenant's admin changes its own
    ("POST", "/v1/tenants"): TENANT_MANAGERS,
    ("GET", "/v1/tenants"): TENANT_MANAGERS,
    ("PATCH", "/v1/tenants/{tenant_id}"): TENANT_MANAGERS,
    ("GET", "/v1/tenants/{tenant_id}/limits"): TENANT_MANAGERS,
    ("PUT", "/v1/tenants/{tenant_id}/limits"): TENANT_MANAGERS,
    ("POST", "/v1/tenants/{tenant_id}/portal-links"): TENANT_MANAGERS,
    ("GET", "/v1/tenant"): READERS,
    ("GET", "/v1/tenant/limits"): READERS,
    ("PATCH", "/v1/tenant"): ADMINS,
    # users and API keys: admins only, reads included
    ("POST", "/v1/users"): ADMINS,
    ("GET", "/v1/users"): ADMINS,
    ("GET", "/v1/users/{user_id}"): ADMINS,
    ("PATCH", "/v1/users/{user_id}"): ADMINS,
    ("DELETE", "/v1/users/{user_id}"): ADMINS,
    ("POST", "/v1/api-keys"): ADMINS,
    ("GET", "/v1/api-keys"): ADMINS,
    ("GET", "/v1/api-keys/{key_id}"): ADMINS,
    ("DELETE", "/v1/api-keys/{key_id}"): ADMINS,
    # portal links: a tenant's admin for its own tenant (the platform admin's route is above)
    ("POST", "/v1/portal-links"): ADMINS,
    # the dashboard
    ("GET", "/ui/static/{name}"): OPEN,
    ("GET", "/ui/login"): OPEN,
    ("POST", "/ui/login"): SIGN_IN,
    ("POST", "/ui/logout"): PAGE,
    ("GET", "/ui/portal"): LINK,
    ("GET", "/ui"): PAGE,
    ("GET", "/ui/events"): PAGE,
    ("GET", "/ui/events/{event_id}"): PAGE,
    ("GET", "/ui/subscriptions"): PAGE,
    ("POST", "/ui/subscriptions"): PAGE,
    ("GET", UI_SUB): PAGE,
    ("POST", UI_SUB): PAGE,
    ("POST", UI_SUB + "/enabled"): PAGE,
    ("POST", UI_SUB + "/rotate-secret"): PAGE,
    ("POST", UI_SUB + "/test"): PAGE,
    ("POST", UI_SUB + "/delete"): PAGE,
    ("GET", UI_SUB + "/deliveries"): PAGE,
    ("POST", UI_SUB + "/recover"): PAGE,
    ("POST", UI_SUB + "/replay"): PAGE,
    ("GET", "/ui/deliveries/{delivery_id}"): PAGE,
    ("GET", "/ui/deliveries"): PAGE,
    ("POST", "/ui/deliveries/{delivery_id}/retry"): PAGE,
    ("GET", "/ui/incidents"): PAGE,
    ("POST", "/ui/incidents"): PAGE,
    ("GET", "/ui/incidents/{incident_id}"): PAGE,
    ("POST", "/ui/incidents/{incident_id}/status"): PAGE,
    ("GET", "/ui/approvals"): PAGE,
    ("POST", "/ui/approvals/{approval_id}/respond"): PAGE,
}

# Request bodies valid for an admitted caller where that is cheap (a denied caller must be
# refused even so); `{}` for the rest. `{incident_id}` and the like are filled in.
_WINDOW = {"since": ms_to_rfc3339(int(time.time() * 1000) - 86_400_000)}
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/webhooks/{tenant_id}/{provider}"): {"title": "matrix", "severity": "low"},
    ("POST", "/v1/events"): {
        "event": "knowledge.pattern_extracted",
        "data": {
            "patternId": "ptn_01M86BHZMVE0ZBGJ09TQM83XSS",
            "incidentId": "{incident_id}",
            "summary": "matrix",
        },
    },
    ("POST", "/v1/events/batch"): {
        "events": [
            {
                "event": "knowledge.pattern_extracted",
                "data": {
                    "patternId": "ptn_01M86BHZMVE0ZBGJ09TQM83XSS",
                    "incidentId": "{incident_id}",
                    "summary": "matrix",
                },
            }
        ]
    },
    ("POST", SUBS): {"url": "http://127.0.0.1:9/matrix", "events": ["incident.created"]},
    ("PATCH", SUB): {"description": "matrix"},
    ("POST", SUB + "/rotate-secret"): {},
    ("POST", SUB + "/test"): {},
    ("POST", SUB + "/recover"): _WINDOW,
    ("POST", SUB + "/replay"): _WINDOW,
    ("POST", "/v1/incidents"): {"title": "matrix", "severity": "low"},
    ("PATCH", "/v1/incidents/{incident_id}"): {"status": "triaging"},
    ("POST", "/v1/incidents/{incident_id}/remediations"): {
        "title": "matrix",
        "steps": ["a"],
        "requiresApproval": False,
    },
    ("POST", "/v1/remediations/{remediation_id}/reject"): {"reason": "matrix"},
    ("POST", "/v1/remediations/{remediation_id}/executed"): {
        "outcome": "success",
        "durationMs": 1,
    },
    ("POST", "/v1/notifications/approvals/{approval_id}/respond"): {"decision": "approved"},
    ("POST", "/v1/integrations"): {"provider": "slack"},
    ("POST", "/v1/triggers"): {"slug": "matrix", "provider": "github", "action": "matrix"},
    ("POST", "/v1/triggers/{trigger_id}/events"): {"any": "event"},
    ("POST", "/v1/tenants"): {"name": "matrix"},
    ("PATCH", "/v1/tenants/{tenant_id}"): {"name": "acme"},
    ("PUT", "/v1/tenants/{tenant_id}/limits"): {"maxStreams": 50},
    ("PATCH", "/v1/tenant"): {"name": "acme"},
    ("POST", "/v1/users"): {"email": "matrix@example.com", "role": "member"},
    ("PATCH", "/v1/users/{user_id}"): {"role": "admin"},
    ("POST", "/v1/api-keys"): {"name": "matrix", "scopes": ["events:read"]},
    ("POST", "/v1/portal-links"): {"role": "viewer"},
    ("POST", "/v1/tenants/{tenant_id}/portal-links"): {"role": "viewer"},
}
# Who sends a creating POST first with the shared `Idempotency-Key`: the first admitted here.
SEED_ORDER = (ADMIN_JWT, PLATFORM, KEY_ADMIN, MEMBER_JWT, KEY_PUBLISH, KEY_READ)


@dataclass
class Caller:
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)  # added to the dashboard's forms
    credential: str = "not-a-credential"  # what it would paste into the sign-in form


@dataclass
class Case:
    method: str
    template: str
    url: str
    rule: Rule
    body: Any


# --- the route table ----------------------------------------------------------------------


def route_table(app: Any) -> list[tuple[str, str]]:
    """Every (method, path template) the app answers: its routes, included routers' routes and
    the inbound endpoint (answered by the gateway but listed with the others). HEAD is left out
    where GET is there: the same endpoint answers it."""
    seen: list[tuple[str, str]] = []
    for route in iter_route_contexts(app.routes):
        if route.path is None or not route.methods:
            continue
        methods = set(route.methods)
        if "GET" in methods:
            methods.discard("HEAD")
        for method in sorted(methods):
            if (method, route.path) not in seen:
                seen.append((method, route.path))
    return seen


def _order(key: tuple[str, str]) -> int:
    method, path = key
    if path == "/ui/logout":
        return 3  # ends the session: last of all
    if method == "DELETE" or path.endswith("/delete"):
        return 2  # removes what others use
    return 1


# --- the service, its tenant and its callers ----------------------------------------------


async def _post(service: Service, path: str, headers: dict[str, str], body: Any) -> Any:
    resp = await service.client.post(path, headers=headers, json=body)
    assert resp.status_code in (200, 201, 202), f"setup {path}: {resp.status_code} {resp.text}"
    return resp.json()


async def _key(service: Service, tenant: Tenant, *scopes: str) -> str:
    created = await _post(
        service, "/v1/api-keys", tenant.admin_headers, {"name": "matrix", "scopes": list(scopes)}
    )
    return str(created["key"])


async def _resources(service: Service, tenant: Tenant) -> dict[str, str]:
    """Values for every path parameter: resources of the tenant made for this test only."""
    admin = tenant.admin_headers
    sub = await _post(service, SUBS, admin, {"url": "http://127.0.0.1:9/victim", "events": ["*"]})
    delivery = await _post(service, f"{SUBS}/{sub['id']}/test", admin, {})
    incident = await _post(service, "/v1/incidents", admin, {"title": "victim", "severity": "low"})
    remediation = await _post(
        service,
        f"/v1/incidents/{incident['id']}/remediations",
        admin,
        {"title": "victim", "steps": ["a"], "requiresApproval": True},
    )
    user = await _post(service, "/v1/users", admin, {"email": "victim@example.com"})
    key = await _post(service, "/v1/api-keys", admin, {"name": "victim", "scopes": ["admin"]})
    integration = await _post(service, "/v1/integrations", admin, {"provider": "slack"})
    trigger = await _post(
        service,
        "/v1/triggers",
        admin,
        {"slug": "victim", "provider": "github", "action": "victim"},
    )
    event = await service.client.get("/v1/events", headers=admin, params={"limit": 1})
    return {
        "tenant_id": tenant.id,
        "provider": "custom",
        "name": "incident.created",
        "subscription_id": sub["id"],
        "sub_id": sub["id"],
        "delivery_id": delivery["id"],
        "incident_id": incident["id"],
        "remediation_id": remediation["id"],
        "approval_id": remediation["approval"]["id"],
        "user_id": user["id"],
        "key_id": key["id"],
        "integration_id": integration["id"],
        "trigger_id": trigger["id"],
        "event_id": event.json()["items"][0]["id"],
    }


def _bearer(token: str) -> Caller:
    return Caller(headers={"Authorization": f"Bearer {token}"}, credential=token)


def _api_key(key: str) -> Caller:
    return Caller(headers={"X-API-Key": key}, credential=key)


def _token(service: Service, tenant: Tenant, role: str) -> str:
    return service.token(tenant, role)["Authorization"].removeprefix("Bearer ")


def _idp_token(key: Any, **claims: Any) -> str:
    now = int(time.time())
    base = {"iss": "causeflow", "aud": "causeflow-api", "sub": "idp-user", "exp": now + 600}
    return jwt.encode({**base, **claims}, key, algorithm="RS256", headers={"kid": "idp-1"})


async def _callers(service: Service, tenant: Tenant, idp_key: Any) -> dict[str, Caller]:
    ctx = service.ctx
    now = ctx.clock.now()
    client = service.client
    revoked = await _post(
        service, "/v1/api-keys", tenant.admin_headers, {"name": "revoked", "scopes": ["admin"]}
    )
    gone = await client.delete(f"/v1/api-keys/{revoked['id']}", headers=tenant.admin_headers)
    assert gone.status_code == 204
    ticket = await _post(service, "/v1/notifications/stream-tickets", tenant.admin_headers, None)
    session_key = await _key(service, tenant, "admin")
    portal = {who: await _portal_session(service, tenant, role) for who, role in _PORTAL_ROLES}
    signed_in = await sign_in(client, session_key)
    assert signed_in.status_code == 303, signed_in.text
    session = client.cookies["cf_session"]
    page = await client.get("/ui/incidents")
    assert page.status_code == 200, page.text
    form_token = csrf_token(page.text)
    client.cookies.clear()
    callers = {
        PLATFORM: _bearer(ctx.tokens.mint_platform_admin(now=now, ttl=3600)),
        ADMIN_JWT: _bearer(_token(service, tenant, "admin")),
        MEMBER_JWT: _bearer(_token(service, tenant, "member")),
        KEY_ADMIN: _api_key(await _key(service, tenant, "admin")),
        KEY_PUBLISH: _api_key(await _key(service, tenant, "events:publish")),
        KEY_READ: _api_key(await _key(service, tenant, "events:read")),
        KEY_INGEST: _api_key(await _key(service, tenant, "alerts:ingest")),
        TICKET: Caller(query={"token": ticket["ticket"]}, credential=ticket["ticket"]),
        TICKET_BEARER: _bearer(ticket["ticket"]),
        SESSION: Caller(cookies={"cf_session": session}, form={"csrf_token": form_token}),
        **portal,
        REVOKED: _api_key(revoked["key"]),
        EXPIRED: _bearer(
            ctx.tokens.mint(tenant_id=tenant.id, role="admin", now=now - 7200, ttl=60)
        ),
        IDP_ADMIN: _bearer(_idp_token(idp_key, tenant_id=tenant.id, roles=["admin"])),
        IDP_MEMBER: _bearer(_idp_token(idp_key, tenant_id=tenant.id, roles=["member"])),
        IDP_PLATFORM: _bearer(_idp_token(idp_key, roles=["platform_admin"])),
        IDP_PLATFORM_TENANT: _bearer(
            _idp_token(idp_key, tenant_id=tenant.id, roles=["platform_admin"])
        ),
        NOBODY: Caller(),
    }
    assert set(callers) == set(EVERYONE)
    return callers


_PORTAL_ROLES = ((PORTAL_VIEWER, "viewer"), (PORTAL_ADMIN, "admin"))


async def _portal_session(service: Service, tenant: Tenant, role: str) -> Caller:
    """The cookie and form token of a session a portal link of `role` opened."""
    client = service.client
    link = urlsplit(
        (await _post(service, "/v1/portal-links", tenant.admin_headers, {"role": role}))["url"]
    )
    client.cookies.clear()
    opened = await client.get(f"{link.path}?{link.query}")
    assert opened.status_code == 303, opened.text
    cookie = opened.cookies["cf_session"]
    token = csrf_token((await client.get("/ui/subscriptions")).text)
    client.cookies.clear()
    return Caller(cookies={"cf_session": cookie}, form={"csrf_token": token})


def _jwks(tmp_path: Path) -> tuple[Path, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": "idp-1", "alg": "RS256", "use": "sig"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public]}))
    return path, key


# --- sending and judging ------------------------------------------------------------------


async def _send(
    client: httpx.AsyncClient, case: Case, caller: Caller, idempotency_key: str | None = None
) -> httpx.Response:
    headers = dict(caller.headers)
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    query = dict(caller.query)
    if case.template == "/v1/notifications/stream":
        # An unknown type is refused after the credential is checked: an admitted caller gets
        # 422 instead of a stream that never ends.
        query["events"] = "no.such_type"
    url = case.url + ("?" + urlencode(query) if query else "")
    cookies = dict(caller.cookies)
    kwargs: dict[str, Any] = {}
    if case.template.startswith("/ui"):
        if case.method == "POST":
            form = dict(caller.form)
            if case.rule == SIGN_IN:
                # The caller's credential, with the form's double-submit token.
                form = {"csrf_token": "matrix-token", "credential": caller.credential}
                cookies["cf_login_csrf"] = "matrix-token"
            kwargs["data"] = form
    elif case.body is not None:
        kwargs["json"] = case.body
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    client.cookies.clear()
    try:
        return await client.request(case.method, url, headers=headers, **kwargs)
    finally:
        client.cookies.clear()


def _judge(case: Case, who: str, resp: httpx.Response) -> str | None:
    """What is wrong with this answer, or None."""
    status = resp.status_code
    if status >= 500:
        return f"{status} {resp.text[:160]}"
    location = resp.headers.get("location", "")
    if case.rule == OPEN:
        if who in INVALID and case.template.startswith("/v1/"):
            return None if status == 401 else f"{status} for a credential that is not valid"
        return f"{status} on an open route" if status in (401, 403) else None
    if case.rule == PAGE:
        # Pages send a caller without a session to sign in, and back here afterwards.
        to_login = status == 303 and location.startswith("/ui/login?next=")
        if who in PORTAL_SESSIONS:
            return _judge_portal_page(case, who, status, to_login)
        if who == SESSION:
            return "sent to sign in with a live session" if to_login or status == 401 else None
        return None if to_login else f"{status} instead of the sign-in redirect"
    if case.rule == LINK:
        # No caller here holds a portal link: whatever else it sends, the page refuses it.
        return None if status == 401 and "set-cookie" not in resp.headers else f"{status}"
    if case.rule == SIGN_IN:
        signed_in = status == 303 and not location.startswith("/ui/login")
        if who in READERS:
            return None if signed_in else f"no session opened: {status} {resp.text[:160]}"
        return None if status in (401, 403) else f"{status} {location}: sign-in not refused"
    assert isinstance(case.rule, frozenset)
    if who in case.rule:
        return f"refused: {status} {resp.text[:160]}" if status in (401, 403) else None
    if status not in (401, 403):
        return f"admitted: {status} {resp.text[:160]}"
    try:
        body = resp.json()
    except ValueError:
        return f"{status} without the error shape: {resp.text[:160]}"
    if not (isinstance(body.get("error"), str) and isinstance(body.get("message"), str)):
        return f"{status} without the error shape: {resp.text[:160]}"
    return None


def _judge_portal_page(case: Case, who: str, status: int, to_login: bool) -> str | None:
    path = case.template
    if to_login or status == 401:
        return "sent to sign in with a live portal session"
    if path == "/ui/logout":
        return None if status == 303 else f"{status} for signing out"
    if path != "/ui" and not path.startswith(PORTAL_PAGES):
        return None if status == 404 else f"{status} outside the portal's pages"
    if who == PORTAL_VIEWER and case.method == "POST":
        return None if status == 403 else f"{status}: a viewer's change not refused"
    return f"refused: {status}" if status == 403 else None


def _fill(template: str, values: dict[str, str]) -> str:
    params = re.findall(r"\{(\w+)\}", template)
    return template.format(**{p: values[p] for p in params})


def _body(method: str, template: str, values: dict[str, str]) -> Any:
    if method not in ("POST", "PATCH") or template.startswith("/ui"):
        return None
    body = BODIES.get((method, template), {})
    return json.loads(json.dumps(body).replace("{incident_id}", values["incident_id"]))


def _cases(app: Any, values: dict[str, str]) -> Iterator[Case]:
    for method, template in sorted(route_table(app), key=_order):
        yield Case(
            method,
            template,
            _fill(template, values),
            POLICY[(method, template)],
            _body(method, template, values),
        )


def _replays_apply(case: Case) -> bool:
    """Creating POSTs of the API take `Idempotency-Key` (the inbound endpoint de-duplicates by
    its providers' delivery ids instead)."""
    return (
        case.method == "POST"
        and case.template.startswith("/v1/")
        and not case.template.startswith("/v1/webhooks/")
        and isinstance(case.rule, frozenset)
    )


async def test_every_route_against_every_credential(tmp_path: Path, database_url: str) -> None:
    jwks, idp_key = _jwks(tmp_path)
    settings = make_settings(tmp_path, database_url, jwks_file=str(jwks))
    async with running_service(settings) as service:
        app = service.client._transport.app  # type: ignore[attr-defined]
        routes = route_table(app)
        assert ("POST", "/v1/webhooks/{tenant_id}/{provider}") in routes
        missing = [f"{m} {p}" for m, p in routes if (m, p) not in POLICY]
        assert not missing, (
            "routes with no entry in POLICY (say who may call them):\n  " + "\n  ".join(missing)
        )
        stale = [f"{m} {p}" for m, p in POLICY if (m, p) not in routes]
        assert not stale, "POLICY names routes the app does not have:\n  " + "\n  ".join(stale)

        tenant = await service.tenant("acme")
        values = await _resources(service, tenant)
        unknown = {p for _, t in routes for p in re.findall(r"\{(\w+)\}", t)} - set(values)
        assert not unknown, f"give the matrix a value for path parameters {sorted(unknown)}"
        callers = await _callers(service, tenant, idp_key)
        client = service.client

        problems: list[str] = []
        for case in _cases(app, values):
            for who, caller in callers.items():
                wrong = _judge(case, who, await _send(client, case, caller))
                if wrong:
                    problems.append(f"{case.method} {case.template} as {who}: {wrong}")
            if not _replays_apply(case):
                continue
            assert isinstance(case.rule, frozenset)
            seed = next((w for w in SEED_ORDER if w in case.rule), None)
            assert seed is not None, f"{case.method} {case.template}: no caller may seed it"
            key = "matrix-" + secrets.token_hex(6)
            first = await _send(client, case, callers[seed], key)
            for who, caller in callers.items():
                resp = await _send(client, case, caller, key)
                label = f"{case.method} {case.template} as {who}, repeating {seed}'s key"
                wrong = _judge(case, who, resp)
                replayed = resp.headers.get("idempotent-replayed") == "true"
                if wrong:
                    problems.append(f"{label}: {wrong}")
                elif who == seed and first.status_code < 500 and not replayed:
                    problems.append(f"{label}: the caller's own repeat was not replayed")
                elif who != seed and replayed:
                    problems.append(f"{label}: got the stored answer ({resp.status_code})")
        assert not problems, f"{len(problems)} authorization problems:\n  " + "\n  ".join(problems)
