"""Event-type patterns, the filter grammar and narrowed recover/replay, through the API and the
dispatcher on both backends: a subscription gets exactly what its rules say."""

from __future__ import annotations

import pytest

from causeflow import ids
from causeflow.clock import ms_to_rfc3339
from tests.support.inproc import Service, Tenant
from tests.support.webhook import (
    SUBS,
    append,
    create_sub,
    delivery_rows,
    dispatch_pending,
    error_paths,
    set_delivery,
)

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
INC_A, INC_B = ids.new_id("inc"), ids.new_id("inc")


async def _got(service: Service, tenant: Tenant, sub: dict) -> list[str]:
    return [r.event_id for r in await delivery_rows(service, tenant, subscription_id=sub["id"])]


async def test_a_pattern_subscribes_to_its_family(service: Service, tenant: Tenant):
    incidents = await create_sub(service, tenant, events=["incident.*"])
    mixed = await create_sub(service, tenant, events=["approval.*", "remediation.proposed"])
    created = await append(service, tenant, "incident.created")
    changed = await append(service, tenant, "incident.status_changed")
    requested = await append(service, tenant, "approval.requested")
    proposed = await append(service, tenant, "remediation.proposed")
    await append(service, tenant, "remediation.approved")
    await dispatch_pending(service.ctx)
    assert await _got(service, tenant, incidents) == [created.id, changed.id]
    assert await _got(service, tenant, mixed) == [requested.id, proposed.id]
    read = await service.client.get(f"{SUBS}/{incidents['id']}", headers=tenant.admin_headers)
    assert read.json()["events"] == ["incident.*"]  # stored and shown as written


async def test_patterns_and_filters_that_cannot_match_are_422(service: Service, tenant: Tenant):
    def post(body: dict) -> object:
        return service.client.post(
            SUBS, headers=tenant.admin_headers, json={"url": "https://example.com/h", **body}
        )

    assert error_paths(await post({"events": ["nothing.*"]})) == ["events.0"]
    assert error_paths(await post({"events": ["incident.*", "*"]})) == ["events"]
    bad_filter = {"events": ["*"], "filter": {"severity": {"like": "crit%"}}}
    assert error_paths(await post(bad_filter)) == ["filter.severity.like"]
    sub = await create_sub(service, tenant)
    patch = await service.client.patch(
        f"{SUBS}/{sub['id']}", headers=tenant.admin_headers, json={"events": ["incident*"]}
    )
    assert error_paths(patch) == ["events.0"]
    listed = await service.client.get(SUBS, headers=tenant.admin_headers)
    assert listed.json()["count"] == 1  # nothing half-written


async def test_nested_keys_and_operators_select_events(service: Service, tenant: Tenant):
    team = await create_sub(
        service, tenant, events=["incident.*"], filter={"labels.team": "payments"}
    )
    prefixed = await create_sub(
        service,
        tenant,
        events=["incident.created"],
        filter={"source": {"prefix": "graf"}, "labels.owner": {"exists": False}},
    )
    listed = await create_sub(
        service, tenant, events=["incident.created"], filter={"severity": {"in": ["critical"]}}
    )
    e1 = await append(
        service, tenant, source="grafana", severity="critical", labels={"team": "payments"}
    )
    e2 = await append(
        service, tenant, source="grafana", severity="low", labels={"team": "search", "owner": "ana"}
    )
    e3 = await append(service, tenant, source="datadog", severity="critical", labels={})
    await dispatch_pending(service.ctx)
    assert await _got(service, tenant, team) == [e1.id]
    assert await _got(service, tenant, prefixed) == [e1.id]
    assert await _got(service, tenant, listed) == [e1.id, e3.id]
    assert e2.id not in await _got(service, tenant, listed)


async def test_replay_narrowed_by_type_and_incident(service: Service, tenant: Tenant):
    first = await append(service, tenant, "incident.created", incidentId=INC_A)
    await append(service, tenant, "incident.status_changed", incidentId=INC_A)
    other = await append(service, tenant, "incident.created", incidentId=INC_B)
    await append(service, tenant, "approval.requested", incidentId=INC_A)
    sub = await create_sub(service, tenant, events=["*"])
    now = service.ctx.clock.now_ms()
    url = f"{SUBS}/{sub['id']}/replay"
    since = ms_to_rfc3339(now - DAY_MS)

    async def replay(**body: object) -> int:
        resp = await service.client.post(
            url, headers=tenant.admin_headers, json={"since": since, **body}
        )
        assert resp.status_code == 202, resp.text
        return int(resp.json()["scheduled"])

    assert await replay(eventTypes=["incident.created"]) == 2
    assert sorted(await _got(service, tenant, sub)) == sorted([first.id, other.id])
    assert await replay(eventTypes=["incident.*"], incidentId=INC_A) == 2
    assert await replay(incidentId=INC_B) == 1
    assert await replay(incidentId=ids.new_id("inc")) == 0
    bad = await service.client.post(
        url, headers=tenant.admin_headers, json={"since": since, "eventTypes": ["nope.*"]}
    )
    assert error_paths(bad) == ["eventTypes.0"]
    assert len(await delivery_rows(service, tenant, subscription_id=sub["id"])) == 5


async def test_recover_narrowed_by_type_and_incident(service: Service, tenant: Tenant):
    sub = await create_sub(service, tenant, events=["*"])
    a_created = await append(service, tenant, "incident.created", incidentId=INC_A)
    a_changed = await append(service, tenant, "incident.status_changed", incidentId=INC_A)
    b_created = await append(service, tenant, "incident.created", incidentId=INC_B)
    await dispatch_pending(service.ctx)
    rows = await delivery_rows(service, tenant, subscription_id=sub["id"])
    for row in rows:
        await set_delivery(service, row.id, status="failed", next_attempt_at=None)
    by_event = {r.event_id: r.id for r in rows}
    url = f"{SUBS}/{sub['id']}/recover"
    since = ms_to_rfc3339(service.ctx.clock.now_ms() - DAY_MS)

    async def recover(**body: object) -> int:
        resp = await service.client.post(
            url, headers=tenant.admin_headers, json={"since": since, **body}
        )
        assert resp.status_code == 202, resp.text
        return int(resp.json()["scheduled"])

    assert await recover(eventTypes=["incident.created"], incidentId=INC_A) == 1
    status = {r.id: r.status for r in await delivery_rows(service, tenant)}
    assert status[by_event[a_created.id]] == "pending"
    assert status[by_event[a_changed.id]] == status[by_event[b_created.id]] == "failed"
    assert await recover(incidentId=INC_B) == 1
    assert await recover(eventTypes=["incident.*"]) == 1  # only a_changed was still failed
    assert await recover() == 0
