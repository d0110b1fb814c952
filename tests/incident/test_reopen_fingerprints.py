"""Reopening a resolved incident takes its alert fingerprint back (unless a newer incident has
opened for it meanwhile), and every move to resolved or closed by hand releases it."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from causeflow.incident.tables import open_fingerprints
from tests.support.inbound import actions, alert, post
from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration


async def move(service: Service, tenant: Tenant, incident_id: str, status: str) -> None:
    resp = await service.client.patch(
        f"/v1/incidents/{incident_id}", headers=tenant.admin_headers, json={"status": status}
    )
    assert resp.status_code == 200, resp.text


async def fire(service: Service, tenant: Tenant, key: str, status: str = "firing") -> tuple:
    resp: httpx.Response = await post(service, tenant, alert(key, status=status))
    [action] = actions(resp)
    return action, resp.json()["alerts"][0]["incidentId"]


async def claims(service: Service) -> list[tuple[str, str]]:
    async with service.ctx.db.read() as conn:
        rows = await conn.execute(
            select(open_fingerprints.c.fingerprint, open_fingerprints.c.incident_id)
        )
        return sorted((r[0], r[1]) for r in rows)


async def test_a_reopened_incident_takes_its_alerts_back(service: Service, tenant: Tenant):
    action, first = await fire(service, tenant, "db-1")
    assert action == "created"
    await move(service, tenant, first, "resolved")
    assert await claims(service) == []
    await move(service, tenant, first, "open")
    assert await claims(service) == [("db-1", first)]
    assert await fire(service, tenant, "db-1") == ("attached", first)
    # the source's resolve finds it again
    assert await fire(service, tenant, "db-1", "resolved") == ("resolved", first)
    assert await claims(service) == []
    detail = await service.client.get(f"/v1/incidents/{first}", headers=tenant.admin_headers)
    assert detail.json()["alertCount"] == 3


async def test_a_newer_incident_keeps_the_key_over_a_reopened_one(service: Service, tenant: Tenant):
    _, first = await fire(service, tenant, "db-1")
    assert (await fire(service, tenant, "db-1", "resolved"))[0] == "resolved"
    action, second = await fire(service, tenant, "db-1")
    assert action == "created" and second != first
    await move(service, tenant, first, "open")
    assert await claims(service) == [("db-1", second)]
    assert await fire(service, tenant, "db-1") == ("attached", second)
    # closing the reopened one leaves the newer incident's claim alone
    await move(service, tenant, first, "closed")
    assert await claims(service) == [("db-1", second)]


async def test_closing_a_reopened_incident_releases_the_key(service: Service, tenant: Tenant):
    _, first = await fire(service, tenant, "db-1")
    await move(service, tenant, first, "resolved")
    await move(service, tenant, first, "open")
    await move(service, tenant, first, "closed")
    assert await claims(service) == []
    action, again = await fire(service, tenant, "db-1")
    assert action == "created" and again != first


async def test_resolving_or_closing_by_hand_from_any_status_releases_the_key(
    service: Service, tenant: Tenant
):
    for index, path in enumerate(
        (["resolved"], ["closed"], ["investigating", "resolved"], ["triaging", "closed"])
    ):
        key = f"svc-{index}"
        _, incident_id = await fire(service, tenant, key)
        for status in path:
            await move(service, tenant, incident_id, status)
        assert all(fingerprint != key for fingerprint, _ in await claims(service))
        action, again = await fire(service, tenant, key)
        assert action == "created" and again != incident_id
    # a resolved incident closed by hand has nothing left to release, and reopening a manual
    # incident (no fingerprint) claims nothing
    resp = await service.client.post(
        "/v1/incidents", headers=tenant.admin_headers, json={"title": "t", "severity": "low"}
    )
    manual = resp.json()["id"]
    await move(service, tenant, manual, "resolved")
    await move(service, tenant, manual, "open")
    assert all(incident != manual for _, incident in await claims(service))


async def test_a_claim_of_a_key_already_open_does_not_take(service: Service, tenant: Tenant):
    """`claim_fingerprints` answers only the keys it took, several claims at once."""
    from causeflow.incident.repository import claim_fingerprints

    _, held = await fire(service, tenant, "db-1")
    _, other = await fire(service, tenant, "db-2")
    claims_made = [
        {"tenant_id": tenant.id, "provider": "custom", "fingerprint": key, "incident_id": inc}
        for key, inc in (("db-1", other), ("db-3", other), ("db-4", held))
    ]
    async with service.ctx.db.transaction() as tx:
        taken = await claim_fingerprints(tx, claims_made)
    assert taken == {(tenant.id, "custom", "db-3"), (tenant.id, "custom", "db-4")}
    assert await claims(service) == sorted(
        [("db-1", held), ("db-2", other), ("db-3", other), ("db-4", held)]
    )
