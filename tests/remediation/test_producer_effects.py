"""What machine producers' events do to incidents: the first investigation.progress published
through `POST /v1/events` moves the incident to investigating, in the same transaction."""

from __future__ import annotations

import pytest

from causeflow_sdk.models import sample_data
from tests.support.inproc import Service, Tenant
from tests.support.steps import api_key, error_code, events_after, incident, last_event_id

pytestmark = pytest.mark.integration


async def test_first_progress_moves_the_incident_to_investigating(service: Service, tenant: Tenant):
    inc = await incident(service, tenant)
    producer = await api_key(service, tenant, "events:publish")
    mark = await last_event_id(service, tenant)
    for step in range(2):
        data = sample_data("investigation.progress", incidentId=inc, stepIndex=step)
        resp = await service.client.post(
            "/v1/events",
            headers=producer,
            json={"event": "investigation.progress", "data": data},
        )
        assert resp.status_code == 201, resp.text
    found = await events_after(service, tenant, mark)
    assert [e["event"] for e in found] == [
        "investigation.progress",
        "incident.status_changed",
        "investigation.progress",
    ]
    moved = found[1]["data"]
    assert (moved["incidentId"], moved["previousStatus"], moved["newStatus"]) == (
        inc,
        "open",
        "investigating",
    )
    assert found[0]["timestamp"] == found[1]["timestamp"]  # one transaction
    got = await service.client.get(f"/v1/incidents/{inc}", headers=tenant.admin_headers)
    assert got.json()["status"] == "investigating"


async def test_test_events_and_other_types_move_nothing(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    inc = await incident(service, tenant)
    producer = await api_key(service, tenant, "events:publish")
    mark = await last_event_id(service, tenant)
    for event_type, test in (
        ("investigation.progress", True),
        ("investigation.completed", False),
        ("knowledge.pattern_extracted", False),
    ):
        resp = await service.client.post(
            "/v1/events",
            headers=producer,
            json={
                "event": event_type,
                "data": sample_data(event_type, incidentId=inc),
                "test": test,
            },
        )
        assert resp.status_code == 201, resp.text
    found = await events_after(service, tenant, mark)
    assert "incident.status_changed" not in [e["event"] for e in found]
    got = await service.client.get(f"/v1/incidents/{inc}", headers=tenant.admin_headers)
    assert got.json()["status"] == "open"


async def test_progress_for_another_tenants_incident_is_404(sqlite_service: Service):
    service = sqlite_service
    tenant, other = await service.tenant("acme"), await service.tenant("globex")
    theirs = await incident(service, other)
    producer = await api_key(service, tenant, "events:publish")
    resp = await service.client.post(
        "/v1/events",
        headers=producer,
        json={
            "event": "investigation.progress",
            "data": sample_data("investigation.progress", incidentId=theirs),
        },
    )
    assert error_code(resp, 404) == "incident_not_found"
    got = await service.client.get(f"/v1/incidents/{theirs}", headers=other.admin_headers)
    assert got.json()["status"] == "open"
