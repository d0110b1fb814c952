"""Dashboard pages over the in-process service: CSRF, headers, autoescape, page flows."""

from __future__ import annotations

import re

import httpx
import pytest

from causeflow.dashboard.render import SECURITY_HEADERS
from causeflow.ids import new_id
from tests.support.dashboard import csrf_token, sign_in
from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
async def acme(sqlite_service: Service) -> Tenant:
    tenant = await sqlite_service.tenant("acme")
    response = await sign_in(sqlite_service.client, tenant.api_key)
    assert response.status_code == 303
    return tenant


@pytest.fixture
def client(sqlite_service: Service) -> httpx.AsyncClient:
    return sqlite_service.client


def assert_secure_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert "default-src 'self'" in response.headers["content-security-policy"]


async def test_every_page_carries_the_security_headers(
    client: httpx.AsyncClient, acme: Tenant
) -> None:
    for path in (
        "/ui/incidents",
        "/ui/approvals",
        "/ui/events",
        "/ui/subscriptions",
        "/ui/deliveries",
    ):
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert_secure_headers(response)
        assert response.headers["cache-control"] == "no-store"
        # No inline script or style: the CSP would block them anyway.
        assert not re.search(r"<script(?![^>]*\bsrc=)", response.text), path
        assert "style=" not in response.text and "<style" not in response.text, path
        assert 'href="#main"' in response.text  # the skip link
    assert_secure_headers(await client.get("/ui/login"))
    assert_secure_headers(await client.get("/ui/deliveries/msg_missing"))


async def test_static_files(client: httpx.AsyncClient) -> None:
    css = await client.get("/ui/static/dashboard.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert_secure_headers(css)
    js = await client.get("/ui/static/live.js")
    assert js.headers["content-type"].startswith("text/javascript")
    assert "textContent" in js.text and "innerHTML" not in js.text
    assert (await client.get("/ui/static/..%2Frouter.py")).status_code == 404
    assert (await client.get("/ui/static/missing.js")).status_code == 404


async def test_posts_without_the_session_token_are_refused(
    sqlite_service: Service, client: httpx.AsyncClient, acme: Tenant
) -> None:
    form = {"url": "http://127.0.0.1:9/hook", "events": "*"}
    missing = await client.post("/ui/subscriptions", data=form)
    assert missing.status_code == 403
    assert_secure_headers(missing)
    wrong = await client.post("/ui/subscriptions", data={**form, "csrf_token": "nope"})
    assert wrong.status_code == 403
    listed = await client.get("/v1/webhook-subscriptions", headers=acme.key_headers)
    assert listed.json()["items"] == []

    # Another session's token is no good either.
    other = await sqlite_service.tenant("globex")
    async with httpx.AsyncClient(transport=client._transport, base_url="http://cf.test") as second:
        await sign_in(second, other.api_key)
        their_token = csrf_token((await second.get("/ui/subscriptions")).text)
    crossed = await client.post("/ui/subscriptions", data={**form, "csrf_token": their_token})
    assert crossed.status_code == 403

    token = csrf_token((await client.get("/ui/subscriptions")).text)
    created = await client.post("/ui/subscriptions", data={**form, "csrf_token": token})
    assert created.status_code == 201


async def test_subscription_secret_is_shown_once(client: httpx.AsyncClient, acme: Tenant) -> None:
    token = csrf_token((await client.get("/ui/subscriptions")).text)
    created = await client.post(
        "/ui/subscriptions",
        data={
            "csrf_token": token,
            "url": "http://127.0.0.1:9/hook",
            "events": ["incident.created", "incident.status_changed"],
            "description": XSS,
            "filter": '{"severity": ["critical"]}',
            "headers": "Authorization: Bearer abc",
        },
    )
    assert created.status_code == 201
    secret = re.search(r'id="secret"[^>]*>(whsec_[^<]+)<', created.text)
    assert secret, created.text
    sub = (await client.get("/v1/webhook-subscriptions", headers=acme.key_headers)).json()
    [item] = sub["items"]
    assert item["events"] == ["incident.created", "incident.status_changed"]
    assert item["filter"] == {"severity": ["critical"]}
    assert list(item["headers"]) == ["Authorization"]

    detail = await client.get(f"/ui/subscriptions/{item['id']}")
    assert detail.status_code == 200
    assert secret.group(1) not in detail.text
    listing = await client.get("/ui/subscriptions")
    assert ESCAPED in listing.text and XSS not in listing.text


async def test_subscription_form_errors_are_shown(client: httpx.AsyncClient, acme: Tenant) -> None:
    token = csrf_token((await client.get("/ui/subscriptions")).text)
    bad_filter = await client.post(
        "/ui/subscriptions",
        data={"csrf_token": token, "url": "http://127.0.0.1:9/", "events": "*", "filter": "{"},
    )
    assert bad_filter.status_code == 422
    assert "filter: not valid JSON" in bad_filter.text
    refused = await client.post(
        "/ui/subscriptions",
        data={"csrf_token": token, "url": "http://10.0.0.1/hook", "events": "*"},
    )
    assert refused.status_code == 422  # the API's own SSRF check, shown on the form
    assert 'role="alert"' in refused.text and "10.0.0.1" in refused.text


async def test_edit_enable_disable_and_rotate(client: httpx.AsyncClient, acme: Tenant) -> None:
    api = acme.key_headers
    sub = (
        await client.post(
            "/v1/webhook-subscriptions",
            json={"url": "http://127.0.0.1:9/a", "events": ["*"], "headers": {"X-A": "1"}},
            headers=api,
        )
    ).json()
    page = await client.get(f"/ui/subscriptions/{sub['id']}")
    token = csrf_token(page.text)
    assert "X-A: &lt;redacted&gt;" in page.text
    saved = await client.post(
        f"/ui/subscriptions/{sub['id']}",
        data={
            "csrf_token": token,
            "url": "http://127.0.0.1:9/b",
            "events": ["incident.created"],
            "headers": "X-A: <redacted>\nX-B: 2",
        },
    )
    assert saved.status_code == 303
    now = (await client.get(f"/v1/webhook-subscriptions/{sub['id']}", headers=api)).json()
    assert now["url"] == "http://127.0.0.1:9/b"
    assert now["events"] == ["incident.created"]
    assert sorted(now["headers"]) == ["X-A", "X-B"]

    off = await client.post(
        f"/ui/subscriptions/{sub['id']}/enabled", data={"csrf_token": token, "enabled": "false"}
    )
    assert off.status_code == 303
    assert (await client.get(f"/v1/webhook-subscriptions/{sub['id']}", headers=api)).json()[
        "enabled"
    ] is False
    rotated = await client.post(
        f"/ui/subscriptions/{sub['id']}/rotate-secret", data={"csrf_token": token}
    )
    assert rotated.status_code == 200
    assert "whsec_" in rotated.text and "previous secret keeps signing" in rotated.text


async def test_deliveries_page_and_missing_delivery(
    client: httpx.AsyncClient, acme: Tenant
) -> None:
    sub = (
        await client.post(
            "/v1/webhook-subscriptions",
            json={"url": "http://127.0.0.1:9/a", "events": ["*"]},
            headers=acme.key_headers,
        )
    ).json()
    page = await client.get(f"/ui/subscriptions/{sub['id']}/deliveries?status=failed")
    assert page.status_code == 200
    assert "<svg" in page.text and 'role="img"' in page.text
    token = csrf_token(page.text)
    sent = await client.post(f"/ui/subscriptions/{sub['id']}/test", data={"csrf_token": token})
    assert sent.status_code == 303
    listing = await client.get(sent.headers["location"])
    assert "Test event queued" in listing.text
    msg = re.search(r'href="/ui/deliveries/(msg_[0-9A-Z]+)"', listing.text)
    assert msg, listing.text
    detail = await client.get(f"/ui/deliveries/{msg.group(1)}")
    assert detail.status_code == 200 and "Retry now" in detail.text

    health = await client.get(f"/ui/subscriptions/{sub['id']}/deliveries")
    assert 'id="health"' in health.text and 'id="backlog"' in health.text

    missing = await client.get("/ui/deliveries/msg_01JD0000000000000000000000")
    assert missing.status_code == 404
    assert "not_found" in missing.text

    recovered = await client.post(
        f"/ui/subscriptions/{sub['id']}/recover",
        data={"csrf_token": token, "since": "2020-01-01T00:00", "until": ""},
    )
    assert recovered.status_code in (303, 422)  # the API bounds the window (14 days)


async def test_incident_pages_escape_titles_and_offer_only_legal_moves(
    client: httpx.AsyncClient, acme: Tenant
) -> None:
    created = await client.post(
        "/v1/incidents", json={"title": XSS, "severity": "critical"}, headers=acme.key_headers
    )
    assert created.status_code == 201, created.text
    incident = created.json()
    listing = await client.get("/ui/incidents")
    assert ESCAPED in listing.text and XSS not in listing.text
    detail = await client.get(f"/ui/incidents/{incident['id']}")
    assert ESCAPED in detail.text and XSS not in detail.text
    offered = set(re.findall(r'name="status" value="([a-z_]+)"', detail.text))
    assert offered == {"triaging", "investigating", "awaiting_approval", "resolved", "closed"}

    token = csrf_token(detail.text)
    moved = await client.post(
        f"/ui/incidents/{incident['id']}/status", data={"csrf_token": token, "status": "triaging"}
    )
    assert moved.status_code == 303
    after = await client.get(moved.headers["location"])
    assert "Status changed." in after.text
    offered = set(re.findall(r'name="status" value="([a-z_]+)"', after.text))
    assert offered == {"investigating", "awaiting_approval", "resolved", "closed"}
    illegal = await client.post(
        f"/ui/incidents/{incident['id']}/status",
        data={"csrf_token": token, "status": "remediating"},
    )
    assert illegal.status_code == 409
    assert "invalid_transition" in illegal.text


async def test_create_incident_form(client: httpx.AsyncClient, acme: Tenant) -> None:
    token = csrf_token((await client.get("/ui/incidents")).text)
    created = await client.post(
        "/ui/incidents", data={"csrf_token": token, "title": "db down", "severity": "high"}
    )
    assert created.status_code == 303
    assert created.headers["location"].startswith("/ui/incidents/inc_")
    filtered = await client.get("/ui/incidents?severity=low")
    assert "db down" not in filtered.text
    assert "db down" in (await client.get("/ui/incidents?severity=high")).text


async def test_event_detail_is_found_from_its_id(client: httpx.AsyncClient, acme: Tenant) -> None:
    published = await client.post(
        "/v1/events",
        json={
            "event": "knowledge.pattern_extracted",
            "data": {"patternId": new_id("ptn"), "incidentId": new_id("inc"), "summary": XSS},
        },
        headers=acme.admin_headers,
    )
    assert published.status_code == 201, published.text
    event_id = published.json()["id"]
    # As the live tail and the incident timeline link it: with the event's time.
    page = await client.get(f"/ui/events/{event_id}", params={"at": published.json()["timestamp"]})
    assert page.status_code == 200
    assert event_id in page.text
    assert ESCAPED in page.text and XSS not in page.text
    assert (await client.get("/ui/events/evt_01JD0000000000000000000000")).status_code == 404
    assert (await client.get("/ui/events/nonsense")).status_code == 404


TAIL_ITEM = re.compile(r'<li class="event" data-event-id="(evt_[^"]+)"')
RESUME = re.compile(r'data-resume-after="([^"]*)"')


async def test_live_events_page_renders_the_latest_fifty_newest_first(
    client: httpx.AsyncClient, acme: Tenant
) -> None:
    empty = await client.get("/ui/events")
    # a new tenant's log holds its tenant.created: shown, and the stream resumes after it
    [created] = TAIL_ITEM.findall(empty.text)
    assert RESUME.findall(empty.text) == [created]
    published = []
    for i in range(55):
        kind = "knowledge.pattern_extracted" if i % 5 == 0 else "incident.created"
        data = (
            {"patternId": new_id("ptn"), "incidentId": new_id("inc"), "summary": f"{XSS} {i}"}
            if i % 5 == 0
            else {"incidentId": new_id("inc"), "title": f"event {i}", "severity": "high",
                  "status": "open", "source": "manual"}
        )  # fmt: skip
        sent = await client.post(
            "/v1/events", json={"event": kind, "data": data}, headers=acme.admin_headers
        )
        assert sent.status_code == 201, sent.text
        published.append((kind, sent.json()["id"]))
    page = await client.get("/ui/events")
    shown = TAIL_ITEM.findall(page.text)
    assert shown == [event_id for _, event_id in reversed(published)][:50]
    assert RESUME.findall(page.text) == [published[-1][1]]
    assert ESCAPED in page.text and XSS not in page.text
    assert "event 54" in page.text and 'id="tail-empty" class="muted" hidden' in page.text
    # with a filter: the latest of those types; the stream resumes after the newest of any
    filtered = await client.get("/ui/events", params={"events": "knowledge.pattern_extracted"})
    patterns = [event_id for kind, event_id in reversed(published) if kind.startswith("know")]
    assert TAIL_ITEM.findall(filtered.text) == patterns
    assert RESUME.findall(filtered.text) == [published[-1][1]]


async def test_pending_approvals_are_answered_from_the_pages(
    client: httpx.AsyncClient, acme: Tenant
) -> None:
    api = acme.key_headers
    incident = (
        await client.post("/v1/incidents", json={"title": "t", "severity": "high"}, headers=api)
    ).json()
    ids = []
    for title in ("restart pods", "drop table " + XSS):
        proposed = await client.post(
            f"/v1/incidents/{incident['id']}/remediations",
            json={"title": title, "steps": ["one"], "requiresApproval": True},
            headers=api,
        )
        assert proposed.status_code == 201, proposed.text
        ids.append(proposed.json()["id"])
    page = await client.get("/ui/approvals")
    assert page.status_code == 200
    assert "restart pods" in page.text and ESCAPED in page.text and XSS not in page.text
    approval_ids = re.findall(r'action="/ui/approvals/(apr_[0-9A-Z]+)/respond"', page.text)
    assert len(approval_ids) == 2
    detail = await client.get(f"/ui/incidents/{incident['id']}")
    assert set(re.findall(r'action="/ui/approvals/(apr_[0-9A-Z]+)/respond"', detail.text)) == set(
        approval_ids
    )

    token = csrf_token(page.text)
    pending = (await client.get("/v1/notifications/approvals/pending", headers=api)).json()
    by_title = {a["title"]: a["id"] for a in pending["items"]}
    approved = await client.post(
        f"/ui/approvals/{by_title['restart pods']}/respond",
        data={"csrf_token": token, "decision": "approved", "notes": "go", "back": "/ui/approvals"},
    )
    assert approved.status_code == 303
    assert approved.headers["location"] == "/ui/approvals?notice=approved"
    refused = await client.post(
        f"/ui/approvals/{by_title['drop table ' + XSS]}/respond",
        data={"decision": "rejected"},
    )
    assert refused.status_code == 403
    after = (await client.get("/v1/notifications/approvals/pending", headers=api)).json()
    assert [a["title"] for a in after["items"]] == ["drop table " + XSS]


async def test_delivery_search_page_finds_where_an_event_went(
    client: httpx.AsyncClient, acme: Tenant, sqlite_service: Service
) -> None:
    from causeflow_sdk.models import sample_data

    subs = []
    for url in ("http://127.0.0.1:9/a", "http://127.0.0.1:9/b"):
        created = await client.post(
            "/v1/webhook-subscriptions",
            json={"url": url, "events": ["incident.created"]},
            headers=acme.key_headers,
        )
        subs.append(created.json()["id"])
    incident_id = new_id("inc")
    event = (
        await client.post(
            "/v1/events",
            json={
                "event": "incident.created",
                "data": sample_data("incident.created", incidentId=incident_id),
            },
            headers=acme.key_headers,
        )
    ).json()
    from tests.support.webhook import dispatch_pending

    await dispatch_pending(sqlite_service.ctx)

    event_page = await client.get(f"/ui/events/{event['id']}")
    assert f'href="/ui/deliveries?eventId={event["id"]}"' in event_page.text
    found = await client.get("/ui/deliveries", params={"eventId": event["id"]})
    assert found.status_code == 200
    for sub_id in subs:
        assert f'href="/ui/subscriptions/{sub_id}"' in found.text
    assert found.text.count('href="/ui/deliveries/msg_') == 2
    by_incident = await client.get("/ui/deliveries", params={"incidentId": incident_id})
    assert by_incident.text.count('href="/ui/deliveries/msg_') == 2
    nothing = await client.get("/ui/deliveries", params={"incidentId": new_id("inc")})
    assert 'id="no-deliveries"' in nothing.text
    # what a stranger typed comes back escaped, never as markup
    hostile = await client.get("/ui/deliveries", params={"eventId": XSS})
    assert XSS not in hostile.text
    bad_time = await client.get("/ui/deliveries", params={"since": "not a time"})
    assert bad_time.status_code == 422
