"""Publishes stored together (publish/service.py `publisher`, used on PostgreSQL), on both
backends: each gets its own event, the log reads as if they had been published one after
another, an effect's events follow the event that caused them, a refused publish fails alone."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from causeflow.event.tables import events
from causeflow.publish.service import prepare, publisher
from causeflow_sdk.models import sample_data
from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration


async def producer_principal(service: Service, tenant: Tenant):
    from causeflow.api.credentials import resolve_principal

    created = await service.client.post(
        "/v1/api-keys",
        headers=tenant.admin_headers,
        json={"name": "engine", "scopes": ["events:publish"]},
    )
    headers = {"x-api-key": created.json()["key"]}
    return await resolve_principal(service.ctx, headers, None, None, None)


async def open_incident(service: Service, tenant: Tenant) -> str:
    resp = await service.client.post(
        "/v1/incidents",
        headers=tenant.admin_headers,
        json={"title": "Checkout down", "severity": "high"},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def log_of(service: Service, tenant: Tenant) -> list[tuple[int, str, str]]:
    async with service.ctx.db.read() as conn:
        rows = await conn.execute(
            select(events.c.position, events.c.type, events.c.id)
            .where(events.c.tenant_id == tenant.id)
            .order_by(events.c.position)
        )
        return [(r[0], r[1], r[2]) for r in rows]


async def test_a_burst_of_publishes_is_one_transaction_in_order(service: Service, tenant: Tenant):
    incident_id = await open_incident(service, tenant)
    engine = await producer_principal(service, tenant)
    now = service.ctx.clock.now_ms()

    def progress(step: str) -> dict:
        return sample_data("investigation.progress", incidentId=incident_id, step=step)

    items = [
        prepare(
            engine,
            event_type="investigation.progress",
            data=progress("one"),
            test=False,
            now_ms=now,
        ),
        prepare(
            engine,
            event_type="investigation.progress",
            data=progress("two"),
            test=False,
            now_ms=now,
        ),
        prepare(
            engine,
            event_type="investigation.progress",
            data={**progress("nowhere"), "incidentId": "inc_01HZZZZZZZZZZZZZZZZZZZZZZZ"},
            test=False,
            now_ms=now,
        ),
        prepare(
            engine,
            event_type="investigation.progress",
            data=progress("three"),
            test=False,
            now_ms=now,
        ),
    ]
    batcher = publisher(service.ctx)
    before_log = await log_of(service, tenant)
    results = await asyncio.gather(*(batcher.submit(i) for i in items), return_exceptions=True)

    # the publish naming a foreign incident fails alone (404); the others are stored
    refused = results[2]
    assert getattr(refused, "status", None) == 404, refused
    stored = [r for r in results if not isinstance(r, BaseException)]
    assert len(stored) == 3 and len({e.id for e in stored}) == 3
    log = (await log_of(service, tenant))[len(before_log) :]
    # the first progress moves the incident to investigating right after it; then the others
    assert [t for _, t, _ in log] == [
        "investigation.progress",
        "incident.status_changed",
        "investigation.progress",
        "investigation.progress",
    ]
    assert [i for _, _, i in log if i in {e.id for e in stored}] == [e.id for e in stored]
    positions = [p for p, _, _ in log]
    assert positions == list(range(positions[0], positions[0] + 4))


async def test_publishes_share_a_batch_and_answer_alike_over_http(service: Service, tenant: Tenant):
    batcher = publisher(service.ctx)
    before = batcher.batches
    responses = await asyncio.gather(
        *(
            service.client.post(
                "/v1/events",
                headers=tenant.key_headers,
                json={"event": "incident.created", "data": sample_data("incident.created")},
            )
            for _ in range(20)
        )
    )
    assert {r.status_code for r in responses} == {201}
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == 20
    if service.ctx.db.dialect.multi_process:  # PostgreSQL: several publishes per transaction
        assert 0 < batcher.batches - before < 20
    else:  # SQLite: each publish is a member of the group commit
        assert batcher.batches == before
    listed = await service.client.get(
        "/v1/events",
        headers=tenant.admin_headers,
        params={"event": "incident.created", "limit": "100"},
    )
    assert sorted(e["id"] for e in listed.json()["items"]) == sorted(ids)


async def test_events_before_a_moving_effect_precede_its_move(
    service: Service, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
):
    """Effects that change nothing leave the batch's events to be appended together; the one that
    moves an incident appends everything before it first, so the log order is unchanged."""
    from causeflow.api.credentials import resolve_principal
    from causeflow.publish import service as publish_module

    appends: list[int] = []
    original = publish_module.append_events

    async def counting(tx, *, tenant_id, items, now_ms):  # type: ignore[no-untyped-def]
        appends.append(len(items))
        return await original(tx, tenant_id=tenant_id, items=items, now_ms=now_ms)

    monkeypatch.setattr(publish_module, "append_events", counting)

    incident_id = await open_incident(service, tenant)
    headers = {k.lower(): v for k, v in tenant.admin_headers.items()}
    admin = await resolve_principal(service.ctx, headers, None, None, None)
    now = service.ctx.clock.now_ms()

    def progress(incident: str, step: str):
        data = sample_data("investigation.progress", incidentId=incident, step=step)
        return prepare(
            admin, event_type="investigation.progress", data=data, test=False, now_ms=now
        )

    unknown = "inc_01HZZZZZZZZZZZZZZZZZZZZZZZ"  # an admin may name any incident: no effect
    items = [progress(unknown, "a"), progress(unknown, "b"), progress(incident_id, "c")]
    items.append(progress(incident_id, "d"))  # already investigating: no second move
    before_log = await log_of(service, tenant)
    stored = await asyncio.gather(*(publisher(service.ctx).submit(i) for i in items))
    log = (await log_of(service, tenant))[len(before_log) :]
    assert [t for _, t, _ in log] == [
        "investigation.progress",
        "investigation.progress",
        "investigation.progress",
        "incident.status_changed",
        "investigation.progress",
    ]
    assert [i for _, t, i in log if t == "investigation.progress"] == [e.id for e in stored]
    # one batch: a, b and c appended together when c's move was certain, then d
    assert appends == [3, 1]
