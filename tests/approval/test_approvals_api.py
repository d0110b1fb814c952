"""Approvals (docs/reference.md §7.5): the pending list and responses, who may answer, and that an
approval is answered once."""

from __future__ import annotations

from typing import Any

import pytest

from causeflow_sdk.models import validate_data
from tests.support.clock import FrozenClock
from tests.support.inproc import Service, Tenant
from tests.support.steps import (
    api_key,
    error_code,
    events_after,
    incident,
    incident_status,
    last_event_id,
    propose,
)

pytestmark = pytest.mark.integration

PENDING = "/v1/notifications/approvals/pending"


def respond_url(approval_id: str) -> str:
    return f"/v1/notifications/approvals/{approval_id}/respond"


async def pending_ids(service: Service, headers: dict[str, str], **params: str) -> list[str]:
    resp = await service.client.get(PENDING, headers=headers, params=params)
    assert resp.status_code == 200, resp.text
    return [a["id"] for a in resp.json()["items"]]


async def test_approving_through_the_approval(service: Service, tenant: Tenant):
    inc = await incident(service, tenant)
    rem = await propose(service, tenant, inc)
    approval_id = rem["approval"]["id"]
    member = service.token(tenant, "member")
    assert await pending_ids(service, member) == [approval_id]
    mark = await last_event_id(service, tenant)
    resp = await service.client.post(
        respond_url(approval_id),
        headers=service.token(tenant, "admin"),
        json={"decision": "approved", "notes": "go ahead"},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["status"], body["decidedBy"], body["notes"]) == (
        "approved",
        "admin@example.com",
        "go ahead",
    )
    found = await events_after(service, tenant, mark)
    assert [e["event"] for e in found] == [
        "approval.resolved",
        "remediation.approved",
        "incident.status_changed",
    ]
    for envelope in found:
        validate_data(envelope["event"], envelope["data"])
    assert found[0]["data"] == {
        "approvalId": approval_id,
        "incidentId": inc,
        "remediationId": rem["id"],
        "decision": "approved",
        "decidedBy": "admin@example.com",
    }
    assert found[1]["data"]["approvedBy"] == "admin@example.com"
    assert await incident_status(service, tenant, inc) == "remediating"
    assert await pending_ids(service, member) == []
    got = await service.client.get(f"/v1/remediations/{rem['id']}", headers=member)
    assert got.json()["status"] == "approved"


async def test_a_second_response_is_409(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    inc = await incident(service, tenant)
    rem = await propose(service, tenant, inc)
    url = respond_url(rem["approval"]["id"])
    first = await service.client.post(
        url, headers=tenant.admin_headers, json={"decision": "rejected", "notes": "not now"}
    )
    assert first.status_code == 200
    mark = await last_event_id(service, tenant)
    for decision in ("approved", "rejected"):
        again = await service.client.post(
            url, headers=tenant.admin_headers, json={"decision": decision}
        )
        assert error_code(again, 409) == "invalid_transition"
        assert again.json()["details"] == {"status": "rejected"}
    assert await events_after(service, tenant, mark) == []
    # and the remediation cannot be decided around it either
    direct = await service.client.post(
        f"/v1/remediations/{rem['id']}/approve", headers=tenant.admin_headers
    )
    assert error_code(direct, 409) == "invalid_transition"


async def test_rejecting_through_the_approval(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    inc = await incident(service, tenant)
    rem = await propose(service, tenant, inc)
    mark = await last_event_id(service, tenant)
    resp = await service.client.post(
        respond_url(rem["approval"]["id"]),
        headers=tenant.admin_headers,
        json={"decision": "rejected", "notes": "wrong service"},
    )
    assert resp.status_code == 200 and resp.json()["status"] == "rejected"
    found = await events_after(service, tenant, mark)
    assert [e["event"] for e in found] == [
        "approval.resolved",
        "remediation.rejected",
        "incident.status_changed",
    ]
    assert found[0]["data"]["decision"] == "rejected"
    rejected = found[1]["data"]
    assert rejected["reason"] == "wrong service" and rejected["rejectedBy"]
    assert found[2]["data"]["newStatus"] == "investigating"
    # without notes the reason still says who decided how
    rem2 = await propose(service, tenant, inc)
    mark = await last_event_id(service, tenant)
    await service.client.post(
        respond_url(rem2["approval"]["id"]),
        headers=tenant.admin_headers,
        json={"decision": "rejected"},
    )
    found = await events_after(service, tenant, mark)
    assert found[1]["event"] == "remediation.rejected" and found[1]["data"]["reason"]


async def test_answers_after_the_deadline_are_refused(
    service: Service, tenant: Tenant, clock: FrozenClock
):
    inc = await incident(service, tenant)
    rem = await propose(service, tenant, inc)
    clock.advance(600)  # exactly the TTL: expired, though no sweep has run yet
    assert await pending_ids(service, tenant.admin_headers) == []
    mark = await last_event_id(service, tenant)
    resp = await service.client.post(
        respond_url(rem["approval"]["id"]),
        headers=tenant.admin_headers,
        json={"decision": "approved"},
    )
    assert error_code(resp, 409) == "approval_expired"
    direct = await service.client.post(
        f"/v1/remediations/{rem['id']}/approve", headers=tenant.admin_headers
    )
    assert error_code(direct, 409) == "approval_expired"
    assert await events_after(service, tenant, mark) == []


async def test_who_may_list_and_respond(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    inc = await incident(service, tenant)
    rem = await propose(service, tenant, inc)
    approval_id = rem["approval"]["id"]
    member = service.token(tenant, "member")
    producer = await api_key(service, tenant, "events:publish")
    reader = await api_key(service, tenant, "events:read")
    ingest = await api_key(service, tenant, "alerts:ingest")
    for headers in (member, reader, tenant.admin_headers):
        assert await pending_ids(service, headers) == [approval_id]
    for headers in (ingest, producer):
        resp = await service.client.get(PENDING, headers=headers)
        assert error_code(resp, 403) == "forbidden"
    for headers in (member, producer, reader, ingest):
        resp = await service.client.post(
            respond_url(approval_id), headers=headers, json={"decision": "approved"}
        )
        assert error_code(resp, 403) == "forbidden"
    resp = await service.client.post(respond_url(approval_id), json={"decision": "approved"})
    assert error_code(resp, 401) == "unauthorized"
    assert await pending_ids(service, member) == [approval_id]


async def test_malformed_responses_are_422(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    inc = await incident(service, tenant)
    rem = await propose(service, tenant, inc)
    bodies: list[Any] = [
        None,
        {},
        {"decision": "maybe"},
        {"decision": "expired"},
        {"decision": "approved", "notes": ""},
        {"decision": "approved", "notes": 5},
        {"decision": "approved", "by": "me"},
        "approved",
    ]
    for body in bodies:
        resp = await service.client.post(
            respond_url(rem["approval"]["id"]), headers=tenant.admin_headers, json=body
        )
        assert error_code(resp, 422) == "validation_error", body
    assert len(await pending_ids(service, tenant.admin_headers)) == 1


async def test_foreign_and_unknown_approvals_are_404(sqlite_service: Service):
    service = sqlite_service
    tenant, other_tenant = await service.tenant("acme"), await service.tenant("globex")
    theirs = await propose(service, other_tenant, await incident(service, other_tenant))
    for approval_id in (theirs["approval"]["id"], "apr_01JD0000000000000000000000", "x"):
        resp = await service.client.post(
            respond_url(approval_id), headers=tenant.admin_headers, json={"decision": "approved"}
        )
        assert error_code(resp, 404) == "approval_not_found"
        resp = await service.client.get(
            f"/v1/notifications/approvals/{approval_id}", headers=tenant.admin_headers
        )
        assert error_code(resp, 404) == "approval_not_found"
    assert await pending_ids(service, tenant.admin_headers) == []
    assert await pending_ids(service, other_tenant.admin_headers) == [theirs["approval"]["id"]]


async def test_pending_list_pages_and_filters(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    first, second = await incident(service, tenant), await incident(service, tenant)
    made = []
    for inc in (first, second, first):
        made.append((await propose(service, tenant, inc))["approval"]["id"])
    resp = await service.client.get(PENDING, headers=tenant.admin_headers, params={"limit": "2"})
    page1 = resp.json()
    assert page1["count"] == 2 and page1["cursor"]
    resp = await service.client.get(
        PENDING, headers=tenant.admin_headers, params={"limit": "2", "cursor": page1["cursor"]}
    )
    page2 = resp.json()
    assert page2["cursor"] is None
    assert [a["id"] for a in page1["items"] + page2["items"]] == made
    assert await pending_ids(service, tenant.admin_headers, incidentId=first) == [
        made[0],
        made[2],
    ]
    one = await service.client.get(
        f"/v1/notifications/approvals/{made[1]}", headers=tenant.admin_headers
    )
    assert one.status_code == 200 and one.json()["incidentId"] == second
