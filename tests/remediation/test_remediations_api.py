"""Remediation endpoints: proposing, approving, rejecting, executing; their events in order;
who may do what; bodies that are refused."""

from __future__ import annotations

from typing import Any

import pytest

from causeflow.clock import ms_to_rfc3339
from causeflow_sdk.models import validate_data
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


def kinds(found: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in found]


def assert_valid(found: list[dict[str, Any]]) -> None:
    for envelope in found:
        validate_data(envelope["event"], envelope["data"])


async def test_proposal_without_approval_emits_only_proposed(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    inc = await incident(service, tenant)
    mark = await last_event_id(service, tenant)
    rem = await propose(service, tenant, inc, requires_approval=False)
    assert rem["status"] == "proposed" and rem["approval"] is None
    assert rem["id"].startswith("rem_") and rem["incidentId"] == inc
    found = await events_after(service, tenant, mark)
    assert kinds(found) == ["remediation.proposed"]
    assert found[0]["data"] == {
        "incidentId": inc,
        "remediationId": rem["id"],
        "title": "roll back the deploy",
        "requiresApproval": False,
        "steps": rem["steps"],
    }
    assert await incident_status(service, tenant, inc) == "open"
    got = await service.client.get(f"/v1/remediations/{rem['id']}", headers=tenant.admin_headers)
    assert got.status_code == 200 and got.json() == rem


async def test_proposal_with_approval_requests_it_and_moves_the_incident(
    service: Service, tenant: Tenant
):
    inc = await incident(service, tenant)
    mark = await last_event_id(service, tenant)
    before = service.ctx.clock.now_ms()
    rem = await propose(service, tenant, inc)
    found = await events_after(service, tenant, mark)
    assert kinds(found) == ["remediation.proposed", "approval.requested", "incident.status_changed"]
    assert_valid(found)
    approval = rem["approval"]
    assert approval["status"] == "pending" and approval["id"].startswith("apr_")
    requested = found[1]["data"]
    assert requested["approvalId"] == approval["id"]
    assert requested["remediationId"] == rem["id"] and requested["incidentId"] == inc
    assert requested["title"] == rem["title"]
    ttl = service.ctx.settings.approval_ttl_seconds * 1000
    assert ms_to_rfc3339(before + ttl) <= requested["expiresAt"] == approval["expiresAt"]
    moved = found[2]["data"]
    assert (moved["previousStatus"], moved["newStatus"]) == ("open", "awaiting_approval")
    assert await incident_status(service, tenant, inc) == "awaiting_approval"


async def test_approve_emits_resolved_approved_and_status_changed_in_order(
    service: Service, tenant: Tenant
):
    inc = await incident(service, tenant)
    rem = await propose(service, tenant, inc)
    mark = await last_event_id(service, tenant)
    headers = service.token(tenant, "admin")
    resp = await service.client.post(f"/v1/remediations/{rem['id']}/approve", headers=headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "approved" and body["decidedBy"] == "admin@example.com"
    assert body["approval"]["status"] == "approved"
    found = await events_after(service, tenant, mark)
    assert kinds(found) == ["approval.resolved", "remediation.approved", "incident.status_changed"]
    assert_valid(found)
    assert found[0]["data"]["decision"] == "approved"
    assert found[0]["data"]["decidedBy"] == "admin@example.com"
    assert found[1]["data"] == {
        "incidentId": inc,
        "remediationId": rem["id"],
        "approvedBy": "admin@example.com",
    }
    assert found[2]["data"]["newStatus"] == "remediating"
    # one transaction: nothing else can sit between them, and they share one timestamp
    assert len({e["timestamp"] for e in found}) == 1
    again = await service.client.post(f"/v1/remediations/{rem['id']}/approve", headers=headers)
    assert error_code(again, 409) == "invalid_transition"
    pending = await service.client.get(
        "/v1/notifications/approvals/pending", headers=tenant.admin_headers
    )
    assert pending.json()["items"] == []


async def test_reject_emits_resolved_rejected_and_moves_back(service: Service, tenant: Tenant):
    inc = await incident(service, tenant)
    rem = await propose(service, tenant, inc)
    mark = await last_event_id(service, tenant)
    resp = await service.client.post(
        f"/v1/remediations/{rem['id']}/reject",
        headers=service.token(tenant, "admin"),
        json={"reason": "too risky during peak"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "rejected" and resp.json()["reason"] == "too risky during peak"
    found = await events_after(service, tenant, mark)
    assert kinds(found) == ["approval.resolved", "remediation.rejected", "incident.status_changed"]
    assert_valid(found)
    assert found[0]["data"]["decision"] == "rejected"
    assert found[1]["data"] == {
        "incidentId": inc,
        "remediationId": rem["id"],
        "rejectedBy": "admin@example.com",
        "reason": "too risky during peak",
    }
    assert (found[2]["data"]["previousStatus"], found[2]["data"]["newStatus"]) == (
        "awaiting_approval",
        "investigating",
    )
    for action, body in (("approve", None), ("reject", {"reason": "x"})):
        resp = await service.client.post(
            f"/v1/remediations/{rem['id']}/{action}", headers=tenant.admin_headers, json=body
        )
        assert error_code(resp, 409) == "invalid_transition"


async def test_execution_follows_approval(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    inc = await incident(service, tenant)
    rem = await propose(service, tenant, inc)
    url = f"/v1/remediations/{rem['id']}/executed"
    done = {"outcome": "failure", "durationMs": 4200}
    early = await service.client.post(url, headers=tenant.key_headers, json=done)
    assert error_code(early, 409) == "invalid_transition"
    await service.client.post(f"/v1/remediations/{rem['id']}/approve", headers=tenant.admin_headers)
    mark = await last_event_id(service, tenant)
    member = service.token(tenant, "member")
    resp = await service.client.post(url, headers=member, json=done)
    assert resp.status_code == 200, resp.text
    assert (resp.json()["status"], resp.json()["outcome"], resp.json()["durationMs"]) == (
        "executed",
        "failure",
        4200,
    )
    found = await events_after(service, tenant, mark)
    assert kinds(found) == ["remediation.executed"]
    assert found[0]["data"] == {
        "incidentId": inc,
        "remediationId": rem["id"],
        "outcome": "failure",
        "durationMs": 4200,
    }
    again = await service.client.post(url, headers=tenant.key_headers, json=done)
    assert error_code(again, 409) == "invalid_transition"


async def test_without_approval_it_may_execute_directly_but_not_after_rejection(
    sqlite_service: Service,
):
    service = sqlite_service
    tenant = await service.tenant("acme")
    inc = await incident(service, tenant)
    producer = await api_key(service, tenant, "events:publish")
    direct = await propose(service, tenant, inc, requires_approval=False, headers=producer)
    resp = await service.client.post(
        f"/v1/remediations/{direct['id']}/executed",
        headers=producer,
        json={"outcome": "success", "durationMs": 0},
    )
    assert resp.status_code == 200 and resp.json()["status"] == "executed"
    refused = await propose(service, tenant, inc, requires_approval=False)
    await service.client.post(
        f"/v1/remediations/{refused['id']}/reject",
        headers=tenant.admin_headers,
        json={"reason": "no"},
    )
    resp = await service.client.post(
        f"/v1/remediations/{refused['id']}/executed",
        headers=producer,
        json={"outcome": "success", "durationMs": 1},
    )
    assert error_code(resp, 409) == "invalid_transition"


async def test_who_may_do_what(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    inc = await incident(service, tenant)
    member = service.token(tenant, "member")
    producer = await api_key(service, tenant, "events:publish")
    reader = await api_key(service, tenant, "events:read")
    ingest = await api_key(service, tenant, "alerts:ingest")
    for headers in (member, producer, tenant.admin_headers, tenant.key_headers):
        await propose(service, tenant, inc, headers=headers)
    body = {"title": "t", "steps": ["s"], "requiresApproval": True}
    for headers in (reader, ingest):
        resp = await service.client.post(
            f"/v1/incidents/{inc}/remediations", headers=headers, json=body
        )
        assert error_code(resp, 403) == "forbidden"
    rem = await propose(service, tenant, inc)
    for headers in (member, producer, reader):
        for action, payload in (("approve", None), ("reject", {"reason": "no"})):
            resp = await service.client.post(
                f"/v1/remediations/{rem['id']}/{action}", headers=headers, json=payload
            )
            assert error_code(resp, 403) == "forbidden", (action, headers)
    for headers in (reader, ingest):
        resp = await service.client.post(
            f"/v1/remediations/{rem['id']}/executed",
            headers=headers,
            json={"outcome": "success", "durationMs": 1},
        )
        assert error_code(resp, 403) == "forbidden"
    # reads: people, readers and the producer that proposed it; never the ingest key
    for headers in (member, producer, reader):
        resp = await service.client.get(f"/v1/remediations/{rem['id']}", headers=headers)
        assert resp.status_code == 200
    resp = await service.client.get(f"/v1/incidents/{inc}/remediations", headers=ingest)
    assert error_code(resp, 403) == "forbidden"
    resp = await service.client.post(f"/v1/remediations/{rem['id']}/approve")
    assert error_code(resp, 401) == "unauthorized"


MALFORMED_PROPOSALS: list[Any] = [
    {"steps": ["a"], "requiresApproval": True},
    {"title": "t", "requiresApproval": True},
    {"title": "t", "steps": ["a"]},
    {"title": "", "steps": ["a"], "requiresApproval": True},
    {"title": "t", "steps": [], "requiresApproval": True},
    {"title": "t", "steps": [""], "requiresApproval": True},
    {"title": "t", "steps": "a", "requiresApproval": True},
    {"title": "t", "steps": ["a"], "requiresApproval": "true"},
    {"title": "t", "steps": ["a"], "requiresApproval": True, "owner": "x"},
    ["not", "an", "object"],
]


async def test_malformed_proposals_are_422(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    inc = await incident(service, tenant)
    for body in MALFORMED_PROPOSALS:
        resp = await service.client.post(
            f"/v1/incidents/{inc}/remediations", headers=tenant.admin_headers, json=body
        )
        assert error_code(resp, 422) == "validation_error", body
        assert resp.json()["details"]["errors"]
    listed = await service.client.get(
        f"/v1/incidents/{inc}/remediations", headers=tenant.admin_headers
    )
    assert listed.json()["count"] == 0


async def test_malformed_decisions_and_reports_are_422(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    inc = await incident(service, tenant)
    rem = await propose(service, tenant, inc)
    cases = [
        ("reject", None),
        ("reject", {}),
        ("reject", {"reason": ""}),
        ("executed", {"outcome": "partial", "durationMs": 1}),
        ("executed", {"outcome": "success"}),
        ("executed", {"outcome": "success", "durationMs": -1}),
        ("executed", {"outcome": "success", "durationMs": "5"}),
    ]
    for action, body in cases:
        resp = await service.client.post(
            f"/v1/remediations/{rem['id']}/{action}", headers=tenant.admin_headers, json=body
        )
        assert error_code(resp, 422) == "validation_error", (action, body)
    got = await service.client.get(f"/v1/remediations/{rem['id']}", headers=tenant.admin_headers)
    assert got.json()["status"] == "proposed"


async def test_unknown_and_foreign_ids_are_404(sqlite_service: Service):
    service = sqlite_service
    tenant, other_tenant = await service.tenant("acme"), await service.tenant("globex")
    theirs = await incident(service, other_tenant)
    their_rem = await propose(service, other_tenant, theirs)
    body = {"title": "t", "steps": ["a"], "requiresApproval": False}
    for inc in (theirs, "inc_01JD0000000000000000000000", "nope"):
        resp = await service.client.post(
            f"/v1/incidents/{inc}/remediations", headers=tenant.admin_headers, json=body
        )
        assert error_code(resp, 404) == "incident_not_found"
        resp = await service.client.get(
            f"/v1/incidents/{inc}/remediations", headers=tenant.admin_headers
        )
        assert error_code(resp, 404) == "incident_not_found"
    for rem_id in (their_rem["id"], "rem_01JD0000000000000000000000"):
        for method, path, payload in (
            ("GET", "", None),
            ("POST", "/approve", None),
            ("POST", "/reject", {"reason": "x"}),
            ("POST", "/executed", {"outcome": "success", "durationMs": 1}),
        ):
            resp = await service.client.request(
                method,
                f"/v1/remediations/{rem_id}{path}",
                headers=tenant.admin_headers,
                json=payload,
            )
            assert error_code(resp, 404) == "remediation_not_found"
    # and the other tenant's remediation is untouched
    got = await service.client.get(
        f"/v1/remediations/{their_rem['id']}", headers=other_tenant.admin_headers
    )
    assert got.json() == their_rem


async def test_list_pages_in_creation_order(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    inc = await incident(service, tenant)
    made = [
        (await propose(service, tenant, inc, requires_approval=False, title=f"plan {i}"))["id"]
        for i in range(3)
    ]
    seen: list[str] = []
    params = {"limit": "2"}
    while True:
        resp = await service.client.get(
            f"/v1/incidents/{inc}/remediations", headers=tenant.admin_headers, params=params
        )
        body = resp.json()
        assert body["count"] == len(body["items"]) <= 2
        seen += [r["id"] for r in body["items"]]
        if not body["cursor"]:
            break
        params["cursor"] = body["cursor"]
    assert seen == made


async def test_idempotent_proposal(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    inc = await incident(service, tenant)
    body = {"title": "t", "steps": ["a"], "requiresApproval": True}
    headers = {**tenant.admin_headers, "Idempotency-Key": "propose-1"}
    first = await service.client.post(
        f"/v1/incidents/{inc}/remediations", headers=headers, json=body
    )
    second = await service.client.post(
        f"/v1/incidents/{inc}/remediations", headers=headers, json=body
    )
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    listed = await service.client.get(
        f"/v1/incidents/{inc}/remediations", headers=tenant.admin_headers
    )
    assert listed.json()["count"] == 1


async def test_nul_characters_are_refused_not_stored(service: Service, tenant: Tenant):
    """PostgreSQL TEXT cannot hold NUL: bodies with one are 422; URLs with one are refused
    at the gateway (400) before any lookup."""
    inc = await incident(service, tenant)
    body = {"title": "a\u0000b", "steps": ["x"], "requiresApproval": False}
    resp = await service.client.post(
        f"/v1/incidents/{inc}/remediations", headers=tenant.admin_headers, json=body
    )
    assert error_code(resp, 422) == "validation_error"
    for url in (
        "/v1/remediations/rem_%00",
        "/v1/incidents/inc_%00/remediations",
        "/v1/notifications/approvals/apr_%00",
        "/v1/integrations/int_%00",
        "/v1/triggers/trg_%00",
    ):
        resp = await service.client.get(url, headers=tenant.admin_headers)
        assert error_code(resp, 400) == "bad_request", (url, resp.text)
    resp = await service.client.get(
        "/v1/notifications/approvals/pending",
        headers=tenant.admin_headers,
        params={"incidentId": "inc_\u0000"},
    )
    assert error_code(resp, 400) == "bad_request"
