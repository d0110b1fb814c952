"""Integration endpoints: connect and disconnect with their events, config never shown again,
who may do what, refused bodies, other tenants' ids."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from causeflow.integration.service import open_config
from causeflow.integration.tables import integrations
from causeflow_sdk.models import validate_data
from tests.support.inproc import Service, Tenant
from tests.support.steps import api_key, error_code, events_after, last_event_id

pytestmark = pytest.mark.integration

SECRET = "xoxb-0123456789-very-secret"


async def connect(service: Service, tenant: Tenant, **body: Any) -> dict[str, Any]:
    payload = {"provider": "slack", "name": "ops channel", **body}
    resp = await service.client.post(
        "/v1/integrations", headers=service.token(tenant, "admin"), json=payload
    )
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def test_connect_and_disconnect(service: Service, tenant: Tenant):
    mark = await last_event_id(service, tenant)
    made = await connect(
        service, tenant, config={"botToken": SECRET, "channel": "#ops", "nested": {"k": SECRET}}
    )
    assert made["id"].startswith("int_") and made["status"] == "connected"
    assert made["configKeys"] == ["botToken", "channel", "nested"]
    assert made["connectedBy"] == "admin@example.com" and made["disconnectedBy"] is None
    found = await events_after(service, tenant, mark)
    assert [e["event"] for e in found] == ["integration.connected"]
    assert found[0]["data"] == {
        "integrationId": made["id"],
        "provider": "slack",
        "connectedBy": "admin@example.com",
    }
    url = f"/v1/integrations/{made['id']}"
    got = await service.client.get(url, headers=tenant.admin_headers)
    assert got.status_code == 200 and got.json() == made

    mark = found[-1]["id"]
    gone = await service.client.delete(url, headers=service.token(tenant, "admin"))
    assert gone.status_code == 200, gone.text
    assert gone.json()["status"] == "disconnected"
    assert gone.json()["disconnectedBy"] == "admin@example.com"
    found = await events_after(service, tenant, mark)
    assert [e["event"] for e in found] == ["integration.disconnected"]
    validate_data("integration.disconnected", found[0]["data"])
    assert found[0]["data"] == {
        "integrationId": made["id"],
        "provider": "slack",
        "disconnectedBy": "admin@example.com",
    }
    # the record stays readable; disconnecting it again is a conflict and emits nothing
    assert (await service.client.get(url, headers=tenant.admin_headers)).json() == gone.json()
    again = await service.client.delete(url, headers=tenant.admin_headers)
    assert error_code(again, 409) == "integration_disconnected"
    assert await events_after(service, tenant, found[-1]["id"]) == []


async def test_config_is_never_shown_and_stored_sealed(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    config = {"apiKey": SECRET, "site": "datadoghq.eu"}
    made = await connect(service, tenant, provider="datadog", config=config)
    texts = [
        (
            await service.client.post(
                "/v1/integrations",
                headers=tenant.admin_headers,
                json={"provider": "datadog", "config": config},
            )
        ).text,
        (
            await service.client.get(f"/v1/integrations/{made['id']}", headers=tenant.admin_headers)
        ).text,
        (await service.client.get("/v1/integrations", headers=tenant.admin_headers)).text,
        (await service.client.get("/v1/events", headers=tenant.admin_headers)).text,
    ]
    for text in texts:
        assert SECRET not in text and "datadoghq.eu" not in text
    async with service.ctx.db.read() as conn:
        stored = (
            await conn.execute(select(integrations.c.config).where(integrations.c.id == made["id"]))
        ).scalar_one()
    assert SECRET not in stored
    assert open_config(service.ctx.keys.box, stored) == config
    plain = await connect(service, tenant, provider="github")
    assert plain["configKeys"] == [] and plain["name"] == "ops channel"


async def test_who_may_connect_and_read(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    member = service.token(tenant, "member")
    producer = await api_key(service, tenant, "events:publish")
    reader = await api_key(service, tenant, "events:read")
    made = await connect(service, tenant)
    for headers in (member, producer, reader):
        resp = await service.client.post(
            "/v1/integrations", headers=headers, json={"provider": "slack"}
        )
        assert error_code(resp, 403) == "forbidden"
        resp = await service.client.delete(f"/v1/integrations/{made['id']}", headers=headers)
        assert error_code(resp, 403) == "forbidden"
    for headers in (member, reader):
        resp = await service.client.get(f"/v1/integrations/{made['id']}", headers=headers)
        assert resp.status_code == 200 and resp.json()["status"] == "connected"
    resp = await service.client.get("/v1/integrations", headers=producer)
    assert error_code(resp, 403) == "forbidden"


async def test_malformed_bodies_are_422(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    bodies: list[Any] = [
        {},
        {"provider": ""},
        {"provider": "Slack Workspace"},
        {"provider": "slack", "name": ""},
        {"provider": "slack", "config": ["token"]},
        {"provider": "slack", "config": "token=x"},
        {"provider": "slack", "enabled": True},
        {"provider": 7},
        [],
    ]
    for body in bodies:
        resp = await service.client.post(
            "/v1/integrations", headers=tenant.admin_headers, json=body
        )
        assert error_code(resp, 422) == "validation_error", body
    listed = await service.client.get("/v1/integrations", headers=tenant.admin_headers)
    assert listed.json()["count"] == 0


async def test_foreign_and_unknown_ids_are_404(sqlite_service: Service):
    service = sqlite_service
    tenant, other = await service.tenant("acme"), await service.tenant("globex")
    theirs = await connect(service, other)
    for integration_id in (theirs["id"], "int_01JD0000000000000000000000"):
        for method in ("GET", "DELETE"):
            resp = await service.client.request(
                method, f"/v1/integrations/{integration_id}", headers=tenant.admin_headers
            )
            assert error_code(resp, 404) == "integration_not_found"
    got = await service.client.get(f"/v1/integrations/{theirs['id']}", headers=other.admin_headers)
    assert got.json()["status"] == "connected"


async def test_list_pages_and_filters_by_status(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    made = [(await connect(service, tenant, provider=p))["id"] for p in ("a", "b", "c")]
    await service.client.delete(f"/v1/integrations/{made[1]}", headers=tenant.admin_headers)
    resp = await service.client.get(
        "/v1/integrations", headers=tenant.admin_headers, params={"limit": "2"}
    )
    first = resp.json()
    resp = await service.client.get(
        "/v1/integrations",
        headers=tenant.admin_headers,
        params={"limit": "2", "cursor": first["cursor"]},
    )
    assert [i["id"] for i in first["items"] + resp.json()["items"]] == made
    assert resp.json()["cursor"] is None
    connected = await service.client.get(
        "/v1/integrations", headers=tenant.admin_headers, params={"status": "connected"}
    )
    assert [i["id"] for i in connected.json()["items"]] == [made[0], made[2]]
    bad = await service.client.get(
        "/v1/integrations", headers=tenant.admin_headers, params={"status": "gone"}
    )
    assert error_code(bad, 422) == "validation_error"
