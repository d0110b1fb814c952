"""POST/GET /v1/events and the polling fallback, on both backends."""

from __future__ import annotations

import orjson
import pytest

from causeflow_sdk.models import sample_data
from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration


def incident_data(**over: object) -> dict:
    return sample_data("incident.created", **over)


async def publish(service: Service, headers: dict, event: str, data: dict, **extra: object):
    return await service.client.post(
        "/v1/events", headers=headers, json={"event": event, "data": data, **extra}
    )


async def test_publish_then_read_returns_the_stored_envelope(service: Service, tenant: Tenant):
    resp = await publish(service, tenant.key_headers, "incident.created", incident_data())
    assert resp.status_code == 201, resp.text
    envelope = resp.json()
    assert envelope["event"] == "incident.created"
    assert envelope["tenantId"] == tenant.id
    assert envelope["id"].startswith("evt_")
    assert envelope["timestamp"].endswith("Z") and len(envelope["timestamp"]) == 24
    assert "test" not in envelope

    listed = await service.client.get(
        "/v1/events", headers=tenant.admin_headers, params={"event": "incident.created"}
    )
    assert listed.status_code == 200
    body = listed.json()
    assert body["count"] == 1 and body["cursor"] is None
    # byte-for-byte the same JSON object
    assert orjson.dumps(body["items"][0]) + b"\n" == resp.content


async def test_test_flag_is_carried(service: Service, tenant: Tenant):
    resp = await publish(
        service, tenant.key_headers, "incident.created", incident_data(), test=True
    )
    assert resp.json()["test"] is True


async def test_unknown_type_and_bad_data_are_422_with_paths(service: Service, tenant: Tenant):
    resp = await publish(service, tenant.key_headers, "incident.exploded", {})
    assert resp.status_code == 422
    assert resp.json()["error"] == "validation_error"
    assert resp.json()["details"]["errors"][0]["path"] == "event"

    resp = await publish(
        service,
        tenant.key_headers,
        "incident.created",
        {**incident_data(), "severity": "apocalyptic"},
    )
    assert resp.status_code == 422
    paths = [e["path"] for e in resp.json()["details"]["errors"]]
    assert "data.severity" in paths


async def test_publish_scope_rules(service: Service, tenant: Tenant):
    created = await service.client.post(
        "/v1/api-keys",
        headers=tenant.admin_headers,
        json={"name": "engine", "scopes": ["events:publish"]},
    )
    assert created.status_code == 201
    engine = {"X-API-Key": created.json()["key"]}
    # a type a resource owns: 403
    resp = await publish(service, engine, "incident.created", incident_data())
    assert resp.status_code == 403 and resp.json()["error"] == "forbidden"
    # a producer type naming an incident the tenant does not have: 404
    resp = await publish(
        service, engine, "investigation.progress", sample_data("investigation.progress")
    )
    assert resp.status_code == 404
    # pattern without incident reference checks pass when it names none... it names one: 404
    resp = await publish(
        service, engine, "knowledge.pattern_extracted", sample_data("knowledge.pattern_extracted")
    )
    assert resp.status_code == 404
    # a member JWT may not publish
    resp = await publish(
        service, service.token(tenant, "member"), "incident.created", incident_data()
    )
    assert resp.status_code == 403
    # an ingest-only key may neither publish nor read
    ingest = {"X-API-Key": tenant.ingest_key}
    assert (await publish(service, ingest, "incident.created", incident_data())).status_code == 403
    assert (await service.client.get("/v1/events", headers=ingest)).status_code == 403


async def test_after_cursor_pages_and_expired_cursor(
    service: Service, tenant: Tenant, other_tenant: Tenant
):
    ids = []
    for i in range(5):
        resp = await publish(
            service, tenant.key_headers, "incident.created", incident_data(title=f"t{i}")
        )
        ids.append(resp.json()["id"])
    all_events = (await service.client.get("/v1/events", headers=tenant.key_headers)).json()
    assert [e["id"] for e in all_events["items"]][1:] == ids  # tenant.created first

    after = await service.client.get(
        "/v1/events", headers=tenant.key_headers, params={"after": ids[1]}
    )
    assert [e["id"] for e in after.json()["items"]] == ids[2:]

    first = await service.client.get(
        "/v1/events", headers=tenant.key_headers, params={"limit": 2, "event": "incident.created"}
    )
    assert first.json()["count"] == 2 and first.json()["cursor"]
    seen = [e["id"] for e in first.json()["items"]]
    cursor = first.json()["cursor"]
    while cursor:
        nxt = await service.client.get(
            "/v1/events",
            headers=tenant.key_headers,
            params={"limit": 2, "cursor": cursor, "event": "incident.created"},
        )
        seen += [e["id"] for e in nxt.json()["items"]]
        cursor = nxt.json()["cursor"]
    assert seen == ids

    for bad in ("evt_01AAAAAAAAAAAAAAAAAAAAAAAA", "garbage"):
        gone = await service.client.get(
            "/v1/events", headers=tenant.key_headers, params={"after": bad}
        )
        assert gone.status_code == 410 and gone.json()["error"] == "cursor_expired"
    # another tenant's event id is an expired cursor too, never a peek into its log
    foreign = await service.client.get(
        "/v1/events", headers=other_tenant.key_headers, params={"after": ids[0]}
    )
    assert foreign.status_code == 410
    polled = await service.client.get(
        "/v1/notifications", headers=tenant.key_headers, params={"after": ids[3]}
    )
    assert [e["id"] for e in polled.json()["items"]] == ids[4:]


async def test_newest_first_pages_filters_and_cursors(service: Service, tenant: Tenant):
    ids = []
    for i in range(5):
        kind = "incident.created" if i % 2 == 0 else "investigation.progress"
        data = incident_data(title=f"t{i}") if i % 2 == 0 else sample_data(kind)
        ids.append((await publish(service, tenant.key_headers, kind, data)).json()["id"])

    async def pages(**params: object) -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            query = {"order": "newest", "limit": 2, **params}
            if cursor:
                query["cursor"] = cursor
            resp = await service.client.get("/v1/events", headers=tenant.key_headers, params=query)
            assert resp.status_code == 200, resp.text
            seen += [e["id"] for e in resp.json()["items"]]
            cursor = resp.json()["cursor"]
            if not cursor:
                return seen

    everything = await pages()
    assert everything[:5] == ids[::-1] and len(everything) == 6  # tenant.created last
    assert await pages(event="incident.created") == [ids[4], ids[2], ids[0]]
    assert await pages(after=ids[1]) == ids[:1:-1]  # newer than ids[1], newest first
    one = await service.client.get(
        "/v1/notifications", headers=tenant.key_headers, params={"order": "newest", "limit": 1}
    )
    assert [e["id"] for e in one.json()["items"]] == [ids[4]]
    # a cursor belongs to its order: a newest-first one is no oldest-first one, and back
    newest = one.json()["cursor"]
    oldest = (
        await service.client.get("/v1/events", headers=tenant.key_headers, params={"limit": 1})
    ).json()["cursor"]
    for order, cursor in (("oldest", newest), ("newest", oldest)):
        mixed = await service.client.get(
            "/v1/events", headers=tenant.key_headers, params={"order": order, "cursor": cursor}
        )
        assert mixed.status_code == 422 and mixed.json()["details"]["errors"][0]["path"] == (
            "cursor"
        )
    bad = await service.client.get(
        "/v1/events", headers=tenant.key_headers, params={"order": "sideways"}
    )
    assert bad.status_code == 422 and bad.json()["error"] == "validation_error"


async def test_since_filter_and_bad_since(service: Service, tenant: Tenant):
    await publish(service, tenant.key_headers, "incident.created", incident_data())
    resp = await service.client.get(
        "/v1/events", headers=tenant.key_headers, params={"since": "2999-01-01T00:00:00Z"}
    )
    assert resp.json()["count"] == 0
    resp = await service.client.get(
        "/v1/events", headers=tenant.key_headers, params={"since": "yesterday"}
    )
    assert resp.status_code == 422 and resp.json()["error"] == "validation_error"


async def test_event_types_catalog(service: Service):
    resp = await service.client.get("/v1/event-types")
    names = [t["name"] for t in resp.json()["items"]]
    assert len(names) == 24 and "approval.requested" in names
    one = resp.json()["items"][0]
    assert {
        "name",
        "domain",
        "description",
        "version",
        "deprecated",
        "schema",
        "example",
        "emittedBy",
    } <= set(one)


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"event": 5}', b""])
async def test_malformed_bodies_are_422(service: Service, tenant: Tenant, body: bytes):
    resp = await service.client.post(
        "/v1/events",
        headers={**tenant.key_headers, "content-type": "application/json"},
        content=body,
    )
    assert resp.status_code == 422
    assert resp.json()["error"] == "validation_error"
