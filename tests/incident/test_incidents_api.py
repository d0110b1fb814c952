"""`/v1/incidents` on both backends: create, list (filters, sort, keyset pages), read with alerts
and events, the transition table over HTTP, who may do what, and the service's own moves."""

from __future__ import annotations

from collections import deque

import httpx
import pytest

from causeflow.incident import service as incidents
from causeflow.incident.lifecycle import STATUSES, TRANSITIONS
from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration


async def create(svc: Service, tenant: Tenant, **over: object) -> dict:
    body = {"title": "Checkout is down", "severity": "critical", **over}
    resp = await svc.client.post("/v1/incidents", headers=tenant.admin_headers, json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def patch(service: Service, tenant: Tenant, incident_id: str, status: str) -> httpx.Response:
    return await service.client.patch(
        f"/v1/incidents/{incident_id}", headers=tenant.admin_headers, json={"status": status}
    )


async def events_of(service: Service, tenant: Tenant, incident_id: str) -> list[dict]:
    resp = await service.client.get(f"/v1/incidents/{incident_id}", headers=tenant.admin_headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["events"]


def path_to(status: str) -> list[str]:
    """The shortest list of legal moves from open to `status`."""
    queue: deque[tuple[str, list[str]]] = deque([("open", [])])
    seen = {"open"}
    while queue:
        current, moves = queue.popleft()
        if current == status:
            return moves
        for nxt in sorted(TRANSITIONS[current]):
            if nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, [*moves, nxt]))
    raise AssertionError(f"{status} is unreachable")


async def incident_in(service: Service, tenant: Tenant, status: str) -> str:
    incident_id = (await create(service, tenant))["id"]
    for step in path_to(status):
        assert (await patch(service, tenant, incident_id, step)).status_code == 200
    return incident_id


async def test_create_manual_incident_emits_incident_created(service: Service, tenant: Tenant):
    incident = await create(
        service, tenant, description="500s everywhere", service="checkout", environment="prod"
    )
    assert incident["id"].startswith("inc_")
    assert (incident["status"], incident["source"], incident["alertCount"]) == ("open", "manual", 0)
    assert (incident["service"], incident["environment"]) == ("checkout", "prod")
    detail = await service.client.get(
        f"/v1/incidents/{incident['id']}", headers=tenant.admin_headers
    )
    body = detail.json()
    assert body["alerts"] == []
    [event] = body["events"]
    assert event["event"] == "incident.created"
    assert event["data"] == {
        "incidentId": incident["id"],
        "title": "Checkout is down",
        "severity": "critical",
        "status": "open",
        "source": "manual",
    }
    # the same envelope as the log's
    log = await service.client.get(
        "/v1/events", headers=tenant.admin_headers, params={"incidentId": incident["id"]}
    )
    assert log.json()["items"] == body["events"]


async def test_create_validates(service: Service, tenant: Tenant):
    for body in (
        {"severity": "low"},
        {"title": "x", "severity": "apocalyptic"},
        {"title": ""},
        {"title": "nul\u0000", "severity": "low"},
    ):
        resp = await service.client.post("/v1/incidents", headers=tenant.admin_headers, json=body)
        assert resp.status_code == 422, body
        assert resp.json()["error"] == "validation_error"


async def test_list_filters_sorts_and_pages(service: Service, tenant: Tenant):
    made = []
    for i, severity in enumerate(["critical", "high", "low", "high", "info"]):
        made.append((await create(service, tenant, title=f"i{i}", severity=severity))["id"])
    assert (await patch(service, tenant, made[1], "triaging")).status_code == 200

    async def walk(**params: str) -> list[str]:
        ids, cursor = [], None
        while True:
            query = {**params, "limit": "2", **({"cursor": cursor} if cursor else {})}
            resp = await service.client.get(
                "/v1/incidents", headers=tenant.admin_headers, params=query
            )
            assert resp.status_code == 200, resp.text
            page = resp.json()
            assert page["count"] == len(page["items"]) <= 2
            ids += [i["id"] for i in page["items"]]
            cursor = page["cursor"]
            if cursor is None:
                return ids

    assert await walk() == made[::-1]
    assert await walk(sort="createdAt") == made
    assert await walk(severity="high") == [made[3], made[1]]
    assert await walk(status="triaging") == [made[1]]
    assert await walk(status="open", severity="high,info", sort="createdAt") == [made[3], made[4]]
    for bad in ({"status": "sleeping"}, {"severity": "x"}, {"sort": "title"}, {"cursor": "!!"}):
        resp = await service.client.get("/v1/incidents", headers=tenant.admin_headers, params=bad)
        assert resp.status_code == 422, bad


async def test_every_illegal_move_is_409_and_every_legal_one_emits(
    service: Service, tenant: Tenant
):
    for current in STATUSES:
        incident_id = await incident_in(service, tenant, current)
        before = await events_of(service, tenant, incident_id)
        for new in STATUSES:
            if new in TRANSITIONS[current]:
                continue
            resp = await patch(service, tenant, incident_id, new)
            assert resp.status_code == 409, (current, new, resp.text)
            assert resp.json()["error"] == "invalid_transition"
        assert await events_of(service, tenant, incident_id) == before  # nothing emitted

        for new in sorted(TRANSITIONS[current]):
            moved_id = await incident_in(service, tenant, current)
            resp = await patch(service, tenant, moved_id, new)
            assert resp.status_code == 200, (current, new, resp.text)
            assert resp.json()["status"] == new
            last = (await events_of(service, tenant, moved_id))[-1]
            assert last["event"] == "incident.status_changed"
            assert last["data"] == {
                "incidentId": moved_id,
                "previousStatus": current,
                "newStatus": new,
                "title": "Checkout is down",
            }


async def test_resolved_at_follows_resolve_and_reopen(service: Service, tenant: Tenant):
    incident_id = (await create(service, tenant))["id"]
    resolved = (await patch(service, tenant, incident_id, "resolved")).json()
    assert resolved["resolvedAt"] is not None
    reopened = (await patch(service, tenant, incident_id, "open")).json()
    assert reopened["resolvedAt"] is None and reopened["status"] == "open"


async def test_who_may_read_and_write(service: Service, tenant: Tenant):
    incident_id = (await create(service, tenant))["id"]

    async def key(scopes: list[str]) -> dict[str, str]:
        resp = await service.client.post(
            "/v1/api-keys", headers=tenant.admin_headers, json={"name": "k", "scopes": scopes}
        )
        return {"X-API-Key": resp.json()["key"]}

    member = service.token(tenant, "member")
    reader = await key(["events:read"])
    publisher = await key(["events:publish"])
    ingest = {"X-API-Key": tenant.ingest_key}
    url = f"/v1/incidents/{incident_id}"
    for headers, can_read, can_write in [
        (tenant.admin_headers, True, True),
        (tenant.key_headers, True, True),  # admin scope
        (member, True, True),
        (reader, True, False),
        (publisher, False, False),
        (ingest, False, False),
    ]:
        for method, path in (("GET", url), ("GET", "/v1/incidents")):
            resp = await service.client.request(method, path, headers=headers)
            assert resp.status_code == (200 if can_read else 403), (headers, path)
        resp = await service.client.post(
            "/v1/incidents", headers=headers, json={"title": "t", "severity": "low"}
        )
        assert resp.status_code == (201 if can_write else 403), headers
        resp = await service.client.patch(url, headers=headers, json={"status": "triaging"})
        if can_write:
            assert resp.status_code in (200, 409)
        else:
            assert resp.status_code == 403
    resp = await service.client.get("/v1/incidents")
    assert resp.status_code == 401


async def test_another_tenants_incident_is_not_found(
    service: Service, tenant: Tenant, other_tenant: Tenant
):
    theirs = (await create(service, other_tenant))["id"]
    for headers in (tenant.admin_headers, tenant.key_headers):
        resp = await service.client.get(f"/v1/incidents/{theirs}", headers=headers)
        assert resp.status_code == 404 and resp.json()["error"] == "incident_not_found"
        resp = await service.client.patch(
            f"/v1/incidents/{theirs}", headers=headers, json={"status": "closed"}
        )
        assert resp.status_code == 404
        listed = await service.client.get("/v1/incidents", headers=headers)
        assert listed.json()["items"] == []
    mine = await service.client.get(f"/v1/incidents/{theirs}", headers=other_tenant.admin_headers)
    assert mine.json()["status"] == "open"


async def test_first_investigation_progress_moves_to_investigating(
    service: Service, tenant: Tenant
):
    incident_id = (await create(service, tenant))["id"]

    async def progress(step: int, test: bool = False) -> None:
        data = {
            "incidentId": incident_id,
            "message": "looking at the load balancer",
            "agentName": "triage",
            "stepIndex": step,
            "totalSteps": 3,
        }
        resp = await service.client.post(
            "/v1/events",
            headers=tenant.key_headers,
            json={"event": "investigation.progress", "data": data, "test": test},
        )
        assert resp.status_code == 201, resp.text

    await progress(0, test=True)  # a test event changes nothing
    assert [e["event"] for e in await events_of(service, tenant, incident_id)] == [
        "incident.created",
        "investigation.progress",
    ]
    await progress(1)
    await progress(2)
    events = await events_of(service, tenant, incident_id)
    assert [e["event"] for e in events] == [
        "incident.created",
        "investigation.progress",
        "investigation.progress",
        "incident.status_changed",
        "investigation.progress",
    ]
    assert events[3]["data"]["previousStatus"] == "open"
    assert events[3]["data"]["newStatus"] == "investigating"


async def test_auto_moves_skip_silently_where_they_do_not_apply(service: Service, tenant: Tenant):
    ctx = service.ctx
    incident_id = await incident_in(service, tenant, "remediating")
    async with ctx.db.transaction() as tx:
        now = ctx.clock.now_ms()
        assert (
            await incidents.auto_move(tx, tenant.id, incident_id, "approval_rejected", now) is None
        )
        assert (
            await incidents.auto_move(tx, tenant.id, "inc_missing", "source_resolved", now) is None
        )
        moved = await incidents.auto_move(tx, tenant.id, incident_id, "source_resolved", now)
    assert moved is not None and moved["status"] == "resolved"
    events = await events_of(service, tenant, incident_id)
    assert events[-1]["data"]["previousStatus"] == "remediating"
    assert events[-1]["data"]["reason"] == "source_resolved"
    async with ctx.db.read() as conn:
        assert (await incidents.get_incident(conn, tenant.id, incident_id))["status"] == "resolved"
