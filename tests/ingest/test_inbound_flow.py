"""Alerts into incidents on both backends: dedup, resolve, re-fire, re-deliveries, batches,
refused payloads, and simultaneous copies of one alert."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY

from causeflow.ingest.providers.registry import PROVIDERS
from causeflow.ingest.runtime import purge_deliveries
from causeflow.ingest.service import store_alerts
from tests.support.inbound import actions, alert, count_rows, post
from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "support" / "fixtures" / "providers"


async def incident(service: Service, tenant: Tenant, incident_id: str) -> dict:
    resp = await service.client.get(f"/v1/incidents/{incident_id}", headers=tenant.admin_headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def counter(provider: str, outcome: str) -> float:
    labels = {"provider": provider, "outcome": outcome}
    return REGISTRY.get_sample_value("causeflow_inbound_alerts_total", labels) or 0.0


async def test_attach_resolve_and_refire(service: Service, tenant: Tenant):
    created_before = counter("custom", "created")
    first = await post(service, tenant, alert("db-1"))
    assert actions(first) == ["created"]
    incident_id = first.json()["alerts"][0]["incidentId"]
    assert first.json() == {
        "status": "accepted",
        "provider": "custom",
        "alerts": [{"fingerprint": "db-1", "incidentId": incident_id, "action": "created"}],
    }

    again = await post(service, tenant, alert("db-1"))
    assert actions(again) == ["attached"]
    assert again.json()["alerts"][0]["incidentId"] == incident_id
    # another fingerprint is another incident
    other = await post(service, tenant, alert("db-2"))
    assert actions(other) == ["created"]
    assert other.json()["alerts"][0]["incidentId"] != incident_id

    resolved = await post(service, tenant, alert("db-1", status="resolved"))
    assert actions(resolved) == ["resolved"]
    assert resolved.json()["alerts"][0]["incidentId"] == incident_id
    detail = await incident(service, tenant, incident_id)
    assert detail["status"] == "resolved" and detail["resolvedAt"] is not None
    assert detail["alertCount"] == 3
    assert [a["status"] for a in detail["alerts"]] == ["firing", "firing", "resolved"]
    assert [(e["event"], e["data"].get("newStatus")) for e in detail["events"]] == [
        ("incident.created", None),
        ("incident.status_changed", "resolved"),
    ]
    changed = detail["events"][1]["data"]
    assert changed["previousStatus"] == "open" and changed["title"] == "Alert db-1"

    assert actions(await post(service, tenant, alert("db-1", status="resolved"))) == ["ignored"]
    refire = await post(service, tenant, alert("db-1"))
    assert actions(refire) == ["created"]
    assert refire.json()["alerts"][0]["incidentId"] != incident_id
    # reopening the old one does not take the fingerprint back from the new one
    resp = await service.client.patch(
        f"/v1/incidents/{incident_id}", headers=tenant.admin_headers, json={"status": "open"}
    )
    assert resp.status_code == 200
    assert actions(await post(service, tenant, alert("db-1"))) == ["attached"]
    assert counter("custom", "created") - created_before == 3


async def test_closing_by_hand_releases_the_fingerprint(service: Service, tenant: Tenant):
    incident_id = (await post(service, tenant, alert("x"))).json()["alerts"][0]["incidentId"]
    resp = await service.client.patch(
        f"/v1/incidents/{incident_id}", headers=tenant.admin_headers, json={"status": "closed"}
    )
    assert resp.status_code == 200
    assert (await count_rows(service))["open_fingerprints"] == 0
    assert actions(await post(service, tenant, alert("x", status="resolved"))) == ["ignored"]
    assert actions(await post(service, tenant, alert("x"))) == ["created"]


async def test_acknowledge_attaches_without_a_move(service: Service, tenant: Tenant):
    def pd(action: str) -> dict:
        return {
            "routing_key": "r" * 32,
            "event_action": action,
            "dedup_key": "disk-db-2",
            "payload": {"summary": "Disk full", "source": "db-2", "severity": "critical"},
        }

    created = await post(service, tenant, pd("trigger"), provider="pagerduty")
    assert actions(created) == ["created"]
    incident_id = created.json()["alerts"][0]["incidentId"]
    assert actions(await post(service, tenant, pd("acknowledge"), provider="pagerduty")) == [
        "attached"
    ]
    assert (await incident(service, tenant, incident_id))["status"] == "open"
    assert actions(await post(service, tenant, pd("resolve"), provider="pagerduty")) == ["resolved"]


async def test_one_payload_with_many_alerts_in_order(service: Service, tenant: Tenant):
    body = {
        "alerts": [
            alert("a"),
            alert("b"),
            alert("a"),
            alert("c", status="resolved"),
            alert("b", status="resolved"),
            alert("b"),
        ]
    }
    resp = await post(service, tenant, body)
    assert actions(resp) == ["created", "created", "attached", "ignored", "resolved", "created"]
    ids = [a["incidentId"] for a in resp.json()["alerts"]]
    assert ids[0] == ids[2] and ids[1] == ids[4] and ids[3] is None
    assert len({ids[0], ids[1], ids[5]}) == 3
    rows = await count_rows(service)
    assert rows["alerts"] == 6 and rows["incidents"] == 3 and rows["open_fingerprints"] == 2


async def test_redelivery_returns_the_first_answer_and_stores_nothing(
    service: Service, tenant: Tenant
):
    headers = {"X-Webhook-Id": "delivery-42"}
    first = await post(service, tenant, alert("r"), headers=headers)
    assert actions(first) == ["created"]
    before = await count_rows(service)
    # even a different body: the delivery id says it is the same delivery
    for body in (alert("r"), alert("r", status="resolved")):
        again = await post(service, tenant, body, headers=headers)
        assert again.status_code == 202
        assert again.content == first.content
    assert await count_rows(service) == before
    # the id is per provider: another sender may use the same one
    other = await post(service, tenant, alert("r"), provider="pagerduty", headers=headers)
    assert other.status_code == 400  # (not a PagerDuty body: parsed, so not taken for a repeat)
    am = FIXTURES / "alertmanager" / "firing_multiple.json"
    other = await post(service, tenant, am.read_bytes(), provider="alertmanager", headers=headers)
    assert set(actions(other)) == {"created"}


async def test_delivery_ids_expire_and_are_purged(service: Service, tenant: Tenant):
    ctx = service.ctx
    ttl_ms = ctx.settings.delivery_id_ttl_seconds * 1000
    parsed = PROVIDERS["custom"].parse({"x-webhook-id": "late"}, orjson.dumps(alert("late")))
    now = ctx.clock.now_ms()
    first = orjson.loads(await store_alerts(ctx, tenant.id, "custom", parsed, now))
    same = orjson.loads(await store_alerts(ctx, tenant.id, "custom", parsed, now + ttl_ms - 1))
    assert same == first and first["alerts"][0]["action"] == "created"
    late = orjson.loads(await store_alerts(ctx, tenant.id, "custom", parsed, now + ttl_ms + 1))
    assert late["alerts"][0]["action"] == "attached"  # processed again: the id had expired

    assert await purge_deliveries(ctx.db, now + ttl_ms, batch=1) == 0  # renewed at +ttl+1
    assert await purge_deliveries(ctx.db, now + 2 * ttl_ms + 2, batch=1) == 1
    assert (await count_rows(service))["inbound_deliveries"] == 0


async def test_unreadable_payloads_are_400_and_store_nothing(service: Service, tenant: Tenant):
    await post(service, tenant, alert("seed"))
    before = await count_rows(service)
    bodies = [
        b"not json",
        b"[1, 2]",
        orjson.dumps({"alerts": [alert("ok-1"), {"status": "firing"}]}),  # 2nd has no title
        orjson.dumps({"alerts": [alert("ok-2"), alert("bad", severity="apocalyptic")]}),
    ]
    for body in bodies:
        resp = await post(service, tenant, body, headers={"X-Webhook-Id": "bad-one"})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"] == "invalid_payload"
        assert resp.json()["message"]
    assert await count_rows(service) == before


async def test_simultaneous_copies_open_one_incident(service: Service, tenant: Tenant):
    for round_ in range(3):
        body = alert(f"storm-{round_}")
        responses = await asyncio.gather(*(post(service, tenant, body) for _ in range(10)))
        got = sorted(actions(r)[0] for r in responses)
        assert got == ["attached"] * 9 + ["created"], got
        assert len({r.json()["alerts"][0]["incidentId"] for r in responses}) == 1
    rows = await count_rows(service)
    assert rows["incidents"] == 3 and rows["alerts"] == 30


async def test_simultaneous_redeliveries_answer_alike(service: Service, tenant: Tenant):
    headers = {"X-Webhook-Id": "same-delivery"}
    responses = await asyncio.gather(
        *(post(service, tenant, alert("dup"), headers=headers) for _ in range(10))
    )
    assert {r.status_code for r in responses} == {202}
    assert len({r.content for r in responses}) == 1
    rows = await count_rows(service)
    assert rows["alerts"] == 1 and rows["incidents"] == 1 and rows["inbound_deliveries"] == 1


async def test_nul_characters_are_stored_on_both_backends(service: Service, tenant: Tenant):
    resp = await post(service, tenant, alert("nul\u0000id", description="a\u0000b"))
    assert actions(resp) == ["created"]
    assert resp.json()["alerts"][0]["fingerprint"] == "nul\ufffdid"
    detail = await incident(service, tenant, resp.json()["alerts"][0]["incidentId"])
    assert detail["alerts"][0]["description"] == "a\ufffdb"
