"""Trigger endpoints: create, receive incoming events, delete, with their events; slugs
unique; config never shown; who may do what; refused bodies; other tenants' ids."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from causeflow.trigger.tables import trigger_events, triggers
from causeflow_sdk.models import validate_data
from tests.support.inproc import Service, Tenant
from tests.support.steps import api_key, error_code, events_after, last_event_id

pytestmark = pytest.mark.integration

SECRET = "ghs_super-secret-webhook-token"


async def create(service: Service, tenant: Tenant, **body: Any) -> dict[str, Any]:
    payload = {"slug": "deploy-failed", "provider": "github", "action": "open_incident", **body}
    resp = await service.client.post("/v1/triggers", headers=tenant.admin_headers, json=payload)
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def received_rows(service: Service, trigger_id: str) -> list[Any]:
    async with service.ctx.db.read() as conn:
        stmt = select(trigger_events).where(trigger_events.c.trigger_id == trigger_id)
        return list((await conn.execute(stmt)).all())


async def test_trigger_lifecycle(service: Service, tenant: Tenant):
    mark = await last_event_id(service, tenant)
    made = await create(service, tenant, config={"secret": SECRET, "repo": "acme/shop"})
    assert made["id"].startswith("trg_")
    assert (made["slug"], made["provider"], made["action"]) == (
        "deploy-failed",
        "github",
        "open_incident",
    )
    assert made["configKeys"] == ["repo", "secret"]
    found = await events_after(service, tenant, mark)
    assert [e["event"] for e in found] == ["trigger.created"]
    assert found[0]["data"] == {
        "triggerId": made["id"],
        "triggerSlug": "deploy-failed",
        "provider": "github",
    }

    producer = await api_key(service, tenant, "events:publish")
    incoming = {"action": "completed", "workflow_run": {"conclusion": "failure", "id": 42}}
    for headers in (producer, tenant.admin_headers):
        resp = await service.client.post(
            f"/v1/triggers/{made['id']}/events", headers=headers, json=incoming
        )
        assert resp.status_code == 201, resp.text
        envelope = resp.json()
        assert envelope["event"] == "trigger.event_received"
        assert envelope["data"] == {
            "triggerId": made["id"],
            "triggerSlug": "deploy-failed",
            "provider": "github",
            "actionTaken": "unknown_trigger",  # an action the service does not run
        }
    found = await events_after(service, tenant, found[-1]["id"])
    assert [e["event"] for e in found] == ["trigger.event_received"] * 2
    assert found[-1] == envelope  # the response is the stored envelope
    rows = await received_rows(service, made["id"])
    assert sorted(r.id for r in rows) == sorted(e["id"] for e in found)
    assert all(r.action_taken == "unknown_trigger" for r in rows)
    assert all(SECRET not in r.payload and "workflow_run" in r.payload for r in rows)

    url = f"/v1/triggers/{made['id']}"
    assert (await service.client.get(url, headers=tenant.admin_headers)).json() == made
    gone = await service.client.delete(url, headers=tenant.admin_headers)
    assert gone.status_code == 204
    found = await events_after(service, tenant, found[-1]["id"])
    assert [e["event"] for e in found] == ["trigger.deleted"]
    validate_data("trigger.deleted", found[0]["data"])
    assert found[0]["data"]["triggerId"] == made["id"]
    assert await received_rows(service, made["id"]) == []
    for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/events")):
        resp = await service.client.request(
            method, url + path, headers=tenant.admin_headers, json={} if path else None
        )
        assert error_code(resp, 404) == "trigger_not_found"
    # the slug is free again
    await create(service, tenant)


async def test_slugs_are_unique_per_tenant(sqlite_service: Service):
    service = sqlite_service
    tenant, other_tenant = await service.tenant("acme"), await service.tenant("globex")
    await create(service, tenant)
    mark = await last_event_id(service, tenant)
    resp = await service.client.post(
        "/v1/triggers",
        headers=tenant.admin_headers,
        json={"slug": "deploy-failed", "provider": "gitlab", "action": "x"},
    )
    assert error_code(resp, 409) == "trigger_exists"
    assert await events_after(service, tenant, mark) == []
    await create(service, other_tenant)  # another tenant's namespace


async def test_config_is_never_shown_and_stored_sealed(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    made = await create(service, tenant, config={"token": SECRET})
    for url in (f"/v1/triggers/{made['id']}", "/v1/triggers", "/v1/events"):
        assert SECRET not in (await service.client.get(url, headers=tenant.admin_headers)).text
    async with service.ctx.db.read() as conn:
        stored = (
            await conn.execute(select(triggers.c.config).where(triggers.c.id == made["id"]))
        ).scalar_one()
    assert SECRET not in stored


async def test_who_may_do_what(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    made = await create(service, tenant)
    member = service.token(tenant, "member")
    producer = await api_key(service, tenant, "events:publish")
    reader = await api_key(service, tenant, "events:read")
    ingest = await api_key(service, tenant, "alerts:ingest")
    body = {"slug": "other", "provider": "github", "action": "x"}
    for headers in (member, producer, reader, ingest):
        resp = await service.client.post("/v1/triggers", headers=headers, json=body)
        assert error_code(resp, 403) == "forbidden"
        resp = await service.client.delete(f"/v1/triggers/{made['id']}", headers=headers)
        assert error_code(resp, 403) == "forbidden"
    for headers in (member, reader, ingest):
        resp = await service.client.post(
            f"/v1/triggers/{made['id']}/events", headers=headers, json={"a": 1}
        )
        assert error_code(resp, 403) == "forbidden"
    for headers in (member, reader):
        resp = await service.client.get(f"/v1/triggers/{made['id']}", headers=headers)
        assert resp.status_code == 200
    assert await received_rows(service, made["id"]) == []


async def test_malformed_bodies_are_422(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    bodies: list[Any] = [
        {},
        {"slug": "Deploy Failed", "provider": "github", "action": "x"},
        {"slug": "ok", "provider": "GitHub!", "action": "x"},
        {"slug": "ok", "provider": "github"},
        {"slug": "ok", "provider": "github", "action": ""},
        {"slug": "ok", "provider": "github", "action": "x", "config": [1]},
        {"slug": "ok", "provider": "github", "action": "x", "extra": 1},
    ]
    for body in bodies:
        resp = await service.client.post("/v1/triggers", headers=tenant.admin_headers, json=body)
        assert error_code(resp, 422) == "validation_error", body
    made = await create(service, tenant)
    url = f"/v1/triggers/{made['id']}/events"
    for payload in ([1, 2], "text", 5, None):
        resp = await service.client.post(url, headers=tenant.admin_headers, json=payload)
        assert error_code(resp, 422) == "validation_error", payload
    resp = await service.client.post(
        url,
        headers={**tenant.admin_headers, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert error_code(resp, 422) == "validation_error"
    assert await received_rows(service, made["id"]) == []


async def test_foreign_and_unknown_ids_are_404(sqlite_service: Service):
    service = sqlite_service
    tenant, other = await service.tenant("acme"), await service.tenant("globex")
    theirs = await create(service, other)
    for trigger_id in (theirs["id"], "trg_01JD0000000000000000000000"):
        for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/events")):
            for headers in (tenant.admin_headers, tenant.key_headers):
                resp = await service.client.request(
                    method,
                    f"/v1/triggers/{trigger_id}{path}",
                    headers=headers,
                    json={"a": 1} if path else None,
                )
                assert error_code(resp, 404) == "trigger_not_found"
    assert await received_rows(service, theirs["id"]) == []
    got = await service.client.get(f"/v1/triggers/{theirs['id']}", headers=other.admin_headers)
    assert got.status_code == 200


async def test_list_pages(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    made = [(await create(service, tenant, slug=f"t{i}"))["id"] for i in range(3)]
    first = (
        await service.client.get("/v1/triggers", headers=tenant.admin_headers, params={"limit": 2})
    ).json()
    rest = (
        await service.client.get(
            "/v1/triggers", headers=tenant.admin_headers, params={"cursor": first["cursor"]}
        )
    ).json()
    assert [t["id"] for t in first["items"] + rest["items"]] == made
    assert first["count"] == 2 and rest["cursor"] is None


async def test_incoming_events_are_kept_as_sent(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    made = await create(service, tenant, config={"n": 1234567890123456789})
    assert made["configKeys"] == ["n"]
    raw = b'{"id": 1234567890123456789, "text": "caf\xc3\xa9",  "nested": {"a": [1.50]}}'
    # Integers beyond 64 bits are refused like in every other body (nothing is stored).
    too_big = raw.replace(b"1234567890123456789", b"123456789012345678901234567890")
    resp = await service.client.post(
        f"/v1/triggers/{made['id']}/events",
        headers={**tenant.admin_headers, "Content-Type": "application/json"},
        content=too_big,
    )
    assert error_code(resp, 422) == "validation_error"
    resp = await service.client.post(
        f"/v1/triggers/{made['id']}/events",
        headers={**tenant.admin_headers, "Content-Type": "application/json"},
        content=raw,
    )
    assert resp.status_code == 201, resp.text
    rows = await received_rows(service, made["id"])
    assert [r.payload for r in rows] == [raw.decode()]
    assert rows[0].id == resp.json()["id"]


async def test_a_utf16_event_is_kept_as_json_text(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    made = await create(service, tenant)
    resp = await service.client.post(
        f"/v1/triggers/{made['id']}/events",
        headers={**tenant.admin_headers, "Content-Type": "application/json"},
        content='{"text": "café"}'.encode("utf-16"),
    )
    assert resp.status_code == 201, resp.text
    assert [r.payload for r in await received_rows(service, made["id"])] == ['{"text": "café"}']
