"""What a trigger does with an incoming event, on both backends: `incident_created` opens an
incident through the inbound dedup rules (a second event with the same fingerprint attaches),
`change_event_published` records the change on the service's unresolved incidents, and
`actionTaken` says what happened (`ignored`, `unknown_trigger`). Bad config is 422 at creation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from causeflow.incident.tables import incidents
from causeflow.trigger.tables import trigger_events
from causeflow_sdk.models import validate_data
from tests.support.inproc import Service, Tenant
from tests.support.steps import error_code, events_after, last_event_id

pytestmark = pytest.mark.integration

GITHUB_CONFIG = {
    "fields": {
        "title": "/workflow_run/name",
        "fingerprint": "/workflow_run/id",
        "service": "/repository/name",
        "url": "/workflow_run/html_url",
    },
    "defaults": {"severity": "high", "environment": "production"},
    "when": {"/action": "completed", "/workflow_run/conclusion": ["failure", "timed_out"]},
}


def run(run_id: int, conclusion: str = "failure", name: str = "deploy checkout") -> dict:
    return {
        "action": "completed",
        "workflow_run": {
            "id": run_id,
            "name": name,
            "conclusion": conclusion,
            "html_url": f"https://github.example/acme/shop/actions/runs/{run_id}",
        },
        "repository": {"name": "checkout"},
    }


async def make_trigger(
    service: Service,
    tenant: Tenant,
    action: str,
    config: Any = None,
    slug: str = "t",
    provider: str = "github",
) -> str:
    body: dict[str, Any] = {"slug": slug, "provider": provider, "action": action}
    if config is not None:
        body["config"] = config
    resp = await service.client.post("/v1/triggers", headers=tenant.admin_headers, json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def fire(service: Service, tenant: Tenant, trigger_id: str, event: dict) -> dict:
    resp = await service.client.post(
        f"/v1/triggers/{trigger_id}/events", headers=tenant.admin_headers, json=event
    )
    assert resp.status_code == 201, resp.text
    envelope: dict = resp.json()
    assert envelope["event"] == "trigger.event_received"
    validate_data("trigger.event_received", envelope["data"])
    return envelope["data"]  # type: ignore[no-any-return]


async def incident(service: Service, tenant: Tenant, incident_id: str) -> dict:
    resp = await service.client.get(f"/v1/incidents/{incident_id}", headers=tenant.admin_headers)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def incident_count(service: Service) -> int:
    async with service.ctx.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(incidents))).scalar_one())


async def test_incident_created_opens_then_attaches_by_fingerprint(
    service: Service, tenant: Tenant
):
    trigger_id = await make_trigger(service, tenant, "incident_created", GITHUB_CONFIG)
    mark = await last_event_id(service, tenant)
    first = await fire(service, tenant, trigger_id, run(42))
    assert first["actionTaken"] == "incident_created"
    incident_id = first["incidentId"]
    # one transaction: incident.created, then the report of what the trigger did
    found = await events_after(service, tenant, mark)
    assert [e["event"] for e in found] == ["incident.created", "trigger.event_received"]
    assert found[0]["data"]["incidentId"] == incident_id
    assert found[0]["data"]["source"] == "github"
    opened = await incident(service, tenant, incident_id)
    assert (opened["title"], opened["severity"], opened["service"], opened["environment"]) == (
        "deploy checkout",
        "high",
        "checkout",
        "production",
    )
    assert (opened["source"], opened["fingerprint"], opened["alertCount"]) == ("github", "42", 1)
    assert opened["alerts"][0]["url"].endswith("/runs/42")

    again = await fire(service, tenant, trigger_id, run(42, "timed_out"))
    assert again == {**first, "actionTaken": "incident_attached"}
    assert (await incident(service, tenant, incident_id))["alertCount"] == 2
    found = await events_after(service, tenant, found[-1]["id"])
    assert [e["event"] for e in found] == ["trigger.event_received"]  # no incident.created
    # the report is on the incident's timeline
    timeline = [e["event"] for e in (await incident(service, tenant, incident_id))["events"]]
    assert timeline == ["incident.created", "trigger.event_received", "trigger.event_received"]

    other = await fire(service, tenant, trigger_id, run(43))
    assert other["actionTaken"] == "incident_created" and other["incidentId"] != incident_id
    # the same dedup rules as inbound alerts: after a resolve, the same run opens a new one
    resp = await service.client.patch(
        f"/v1/incidents/{incident_id}", headers=tenant.admin_headers, json={"status": "resolved"}
    )
    assert resp.status_code == 200
    refire = await fire(service, tenant, trigger_id, run(42))
    assert refire["actionTaken"] == "incident_created" and refire["incidentId"] != incident_id
    assert await incident_count(service) == 3


async def test_a_trigger_shares_dedup_with_the_inbound_alerts_of_its_provider(
    service: Service, tenant: Tenant
):
    trigger_id = await make_trigger(service, tenant, "incident_created")  # default fields
    resp = await service.client.post(
        f"/v1/webhooks/{tenant.id}/custom",
        headers={"X-API-Key": tenant.ingest_key},
        json={"externalId": "disk-1", "title": "Disk full"},
    )
    assert resp.status_code == 202, resp.text
    inbound = resp.json()["alerts"][0]["incidentId"]
    custom = await make_trigger(service, tenant, "incident_created", slug="c", provider="custom")
    got = await fire(service, tenant, custom, {"title": "Disk full", "fingerprint": "disk-1"})
    assert (got["actionTaken"], got["incidentId"]) == ("incident_attached", inbound)
    # the github trigger's key is another provider's: a new incident
    got = await fire(service, tenant, trigger_id, {"title": "Disk full", "fingerprint": "disk-1"})
    assert got["actionTaken"] == "incident_created" and got["incidentId"] != inbound


async def test_ignored_events_change_nothing_but_are_reported(service: Service, tenant: Tenant):
    trigger_id = await make_trigger(service, tenant, "incident_created", GITHUB_CONFIG)
    mark = await last_event_id(service, tenant)
    for event in (
        run(42, "success"),  # `when` does not hold
        {**run(42), "action": "requested"},
        {"zen": "Keep it logically awesome."},  # no action: `when` pointer missing
        {**run(42), "workflow_run": {"id": 42, "conclusion": "failure"}},  # no title
    ):
        data = await fire(service, tenant, trigger_id, event)
        assert data["actionTaken"] == "ignored" and "incidentId" not in data
    assert await incident_count(service) == 0
    found = await events_after(service, tenant, mark)
    assert [e["event"] for e in found] == ["trigger.event_received"] * 4
    async with service.ctx.db.read() as conn:
        rows = (
            await conn.execute(
                select(trigger_events.c.action_taken).where(
                    trigger_events.c.trigger_id == trigger_id
                )
            )
        ).all()
    assert [r.action_taken for r in rows] == ["ignored"] * 4


async def test_change_event_published_is_recorded_on_the_services_unresolved_incidents(
    service: Service, tenant: Tenant
):
    async def manual(service_name: str, title: str) -> str:
        resp = await service.client.post(
            "/v1/incidents",
            headers=tenant.admin_headers,
            json={"title": title, "severity": "high", "service": service_name},
        )
        return str(resp.json()["id"])

    open_one = await manual("checkout", "5xx on checkout")
    investigating = await manual("Checkout", "slow checkout")
    resolved = await manual("checkout", "old checkout outage")
    elsewhere = await manual("payments", "payments down")
    for incident_id, status in ((investigating, "investigating"), (resolved, "resolved")):
        resp = await service.client.patch(
            f"/v1/incidents/{incident_id}", headers=tenant.admin_headers, json={"status": status}
        )
        assert resp.status_code == 200
    trigger_id = await make_trigger(service, tenant, "change_event_published")  # default fields
    mark = await last_event_id(service, tenant)
    deploy = {
        "id": "deploy-v2.42.0",
        "title": "Deploy v2.42.0",
        "service": "checkout",
        "url": "https://deploys.example/v2.42.0",
        "description": "raises the pool size",
    }
    data = await fire(service, tenant, trigger_id, deploy)
    assert data["actionTaken"] == "change_recorded"
    assert data["incidentIds"] == [open_one, investigating]
    assert [e["event"] for e in await events_after(service, tenant, mark)] == [
        "trigger.event_received"
    ]
    for incident_id in (open_one, investigating):
        detail = await incident(service, tenant, incident_id)
        [change] = [a for a in detail["alerts"] if a["status"] == "change"]
        assert (change["title"], change["provider"], change["fingerprint"]) == (
            "Deploy v2.42.0",
            "github",
            "deploy-v2.42.0",
        )
        assert change["url"] == "https://deploys.example/v2.42.0"
        assert change["labels"] == {"trigger": "t"}
        assert detail["alertCount"] == 0  # a change is not an alert
    for incident_id in (resolved, elsewhere):
        assert (await incident(service, tenant, incident_id))["alerts"] == []

    # nothing open for the service: nothing to record on
    data = await fire(service, tenant, trigger_id, {**deploy, "service": "search"})
    assert data["actionTaken"] == "ignored" and "incidentIds" not in data
    # no service at all: ignored too
    data = await fire(service, tenant, trigger_id, {"title": "Deploy"})
    assert data["actionTaken"] == "ignored"


async def test_an_action_the_service_does_not_run_is_an_unknown_trigger(
    service: Service, tenant: Tenant
):
    # its config is not read, so anything goes
    trigger_id = await make_trigger(service, tenant, "page_oncall", {"fields": 1})
    data = await fire(service, tenant, trigger_id, {"title": "x", "fingerprint": "y"})
    assert data["actionTaken"] == "unknown_trigger"
    assert await incident_count(service) == 0


async def test_a_foreign_tenants_trigger_is_404_and_runs_nothing(service: Service, tenant: Tenant):
    other = await service.tenant("globex")
    theirs = await make_trigger(service, other, "incident_created")
    mark = await last_event_id(service, tenant)
    resp = await service.client.post(
        f"/v1/triggers/{theirs}/events",
        headers=tenant.admin_headers,
        json={"title": "Disk full", "fingerprint": "disk-1"},
    )
    assert error_code(resp, 404) == "trigger_not_found"
    assert await incident_count(service) == 0
    assert await events_after(service, tenant, mark) == []


@pytest.mark.parametrize(
    ("action", "config", "paths"),
    [
        ("incident_created", {"field": {}}, ["config.field"]),
        ("incident_created", {"fields": []}, ["config.fields"]),
        ("incident_created", {"fields": {"title": "title"}}, ["config.fields.title"]),
        ("incident_created", {"fields": {"title": "/a~2b"}}, ["config.fields.title"]),
        ("incident_created", {"fields": {"colour": "/c"}}, ["config.fields.colour"]),
        ("incident_created", {"defaults": {"severity": "urgent"}}, ["config.defaults.severity"]),
        ("incident_created", {"defaults": {"title": ""}}, ["config.defaults.title"]),
        ("incident_created", {"defaults": {"title": 5}}, ["config.defaults.title"]),
        ("incident_created", {"when": {"action": "x"}}, ["config.when.action"]),
        ("incident_created", {"when": {"/a": {"b": 1}}}, ["config.when./a"]),
        ("incident_created", {"when": {"/a": []}}, ["config.when./a"]),
        ("change_event_published", {"fields": {"severity": "/s"}}, ["config.fields.severity"]),
        (
            "change_event_published",
            {"fields": {"service": 1}, "defaults": {"nope": "x"}},
            ["config.fields.service", "config.defaults.nope"],
        ),
    ],
)
async def test_bad_config_is_422_and_stores_nothing(
    sqlite_service: Service, action: str, config: dict, paths: list[str]
):
    service = sqlite_service
    tenant = await service.tenant("acme")
    mark = await last_event_id(service, tenant)
    resp = await service.client.post(
        "/v1/triggers",
        headers=tenant.admin_headers,
        json={"slug": "bad", "provider": "github", "action": action, "config": config},
    )
    assert error_code(resp, 422) == "validation_error"
    assert [e["path"] for e in resp.json()["details"]["errors"]] == paths
    assert await events_after(service, tenant, mark) == []
    listed = await service.client.get("/v1/triggers", headers=tenant.admin_headers)
    assert listed.json()["items"] == []


async def test_values_a_database_cannot_hold_are_stored_not_refused(
    service: Service, tenant: Tenant
):
    # An integer beyond 64 bits is refused with the body, like on every route (a client
    # sends it as a string); a NUL, which PostgreSQL text cannot hold, is stored as U+FFFD.
    big = "123456789012345678901234567890"
    opener = await make_trigger(service, tenant, "incident_created")
    refused = await service.client.post(
        f"/v1/triggers/{opener}/events",
        headers={**tenant.admin_headers, "Content-Type": "application/json"},
        content=b'{"title": "disk full", "n": ' + big.encode() + b"}",
    )
    assert error_code(refused, 422) == "validation_error"
    data = await fire(
        service, tenant, opener, {"title": "disk\u0000full", "fingerprint": big, "n": big}
    )
    assert data["actionTaken"] == "incident_created"
    opened = await incident(service, tenant, data["incidentId"])
    assert (opened["title"], opened["fingerprint"]) == ("disk\ufffdfull", big)
    resp = await service.client.patch(
        f"/v1/incidents/{opened['id']}", headers=tenant.admin_headers, json={"status": "triaging"}
    )
    assert resp.status_code == 200
    changes = await make_trigger(service, tenant, "change_event_published", slug="c")
    data = await fire(
        service, tenant, changes, {"title": "v\u00002", "service": "db", "n": big, "id": big}
    )
    assert data["actionTaken"] == "ignored"  # the incident has no service
    await service.client.post(
        "/v1/incidents",
        headers=tenant.admin_headers,
        json={"title": "db slow", "severity": "low", "service": "db"},
    )
    data = await fire(
        service, tenant, changes, {"title": "v\u00002", "service": "db", "n": big, "id": big}
    )
    assert data["actionTaken"] == "change_recorded"
    [change] = (await incident(service, tenant, data["incidentIds"][0]))["alerts"]
    assert (change["title"], change["fingerprint"]) == ("v\ufffd2", big)


async def test_simultaneous_events_with_one_fingerprint_open_one_incident(
    service: Service, tenant: Tenant
):
    trigger_id = await make_trigger(service, tenant, "incident_created", GITHUB_CONFIG)
    got = await asyncio.gather(*(fire(service, tenant, trigger_id, run(7)) for _ in range(4)))
    assert sorted(d["actionTaken"] for d in got) == ["incident_attached"] * 3 + ["incident_created"]
    assert len({d["incidentId"] for d in got}) == 1
    assert await incident_count(service) == 1
