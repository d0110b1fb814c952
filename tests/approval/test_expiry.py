"""The approval expiry job: overdue approvals expire once, with their events, however many
sweepers run and whoever answers at the same moment."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from causeflow.approval.expiry import ApprovalSweeper
from causeflow.approval.respond import respond_approval
from causeflow.db.engine import Database
from causeflow.errors import Conflict
from causeflow_sdk.models import validate_data
from tests.support.clock import FrozenClock
from tests.support.inproc import Service, Tenant, make_settings, running_service
from tests.support.steps import (
    error_code,
    events,
    events_after,
    incident,
    incident_status,
    last_event_id,
    propose,
)

pytestmark = pytest.mark.integration


async def proposals(service: Service, tenant: Tenant, count: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        out.append(await propose(service, tenant, await incident(service, tenant)))
    return out


async def test_overdue_approvals_expire_with_their_events(
    service: Service, tenant: Tenant, clock: FrozenClock
):
    made = await proposals(service, tenant, 2)
    sweeper = ApprovalSweeper(service.ctx.db, clock)
    clock.advance(599.999)
    assert await sweeper.sweep() == 0
    mark = await last_event_id(service, tenant)
    clock.advance(0.001)
    assert await sweeper.sweep() == 2
    found = await events_after(service, tenant, mark)
    assert len(found) == 6
    for rem, triple in zip(made, (found[:3], found[3:]), strict=True):
        assert [e["event"] for e in triple] == [
            "approval.resolved",
            "remediation.rejected",
            "incident.status_changed",
        ]
        for envelope in triple:
            validate_data(envelope["event"], envelope["data"])
        assert triple[0]["data"] == {
            "approvalId": rem["approval"]["id"],
            "incidentId": rem["incidentId"],
            "remediationId": rem["id"],
            "decision": "expired",
            "decidedBy": None,
        }
        assert triple[1]["data"] == {
            "incidentId": rem["incidentId"],
            "remediationId": rem["id"],
            "rejectedBy": None,
            "reason": "approval_expired",
        }
        moved = triple[2]["data"]
        assert (moved["previousStatus"], moved["newStatus"]) == (
            "awaiting_approval",
            "investigating",
        )
        assert await incident_status(service, tenant, rem["incidentId"]) == "investigating"
        got = await service.client.get(
            f"/v1/remediations/{rem['id']}", headers=tenant.admin_headers
        )
        assert got.json()["status"] == "rejected" and got.json()["reason"] == "approval_expired"
        assert got.json()["approval"]["status"] == "expired"
    # nothing left to do, and nobody can answer an expired approval any more
    assert await sweeper.sweep() == 0
    resp = await service.client.post(
        f"/v1/notifications/approvals/{made[0]['approval']['id']}/respond",
        headers=tenant.admin_headers,
        json={"decision": "approved"},
    )
    assert error_code(resp, 409) == "invalid_transition"
    assert resp.json()["details"] == {"status": "expired"}


async def test_two_sweepers_expire_each_approval_exactly_once(
    service: Service, tenant: Tenant, other_tenant: Tenant, clock: FrozenClock
):
    made = await proposals(service, tenant, 6) + await proposals(service, other_tenant, 6)
    clock.advance(601)
    second_db = Database(service.ctx.settings)  # its own pool: another process, in effect
    try:
        sweepers = [
            ApprovalSweeper(service.ctx.db, clock, batch_size=3),
            ApprovalSweeper(second_db, clock, batch_size=3),
        ]
        counts = await asyncio.gather(*(s.sweep() for s in sweepers))
    finally:
        await second_db.dispose()
    assert sum(counts) == len(made)
    for who in (tenant, other_tenant):
        resolved = await events(service, who, event="approval.resolved")
        rejected = await events(service, who, event="remediation.rejected")
        assert len(resolved) == len(rejected) == 6
        assert len({e["data"]["approvalId"] for e in resolved}) == 6
        assert {e["data"]["decision"] for e in resolved} == {"expired"}
    pending = await service.client.get(
        "/v1/notifications/approvals/pending", headers=tenant.admin_headers
    )
    assert pending.json()["count"] == 0


async def test_answers_racing_the_expiry_are_decided_once(
    service: Service, tenant: Tenant, clock: FrozenClock
):
    """A person answers just before the deadline while a sweeper (another process, whose clock
    is already past it) expires the same approvals: the pending guard picks one per approval."""
    made = await proposals(service, tenant, 8)
    deadline = clock.now_ms() + 600_000
    second_db = Database(service.ctx.settings)

    async def answer(rem: dict[str, Any]) -> bool:
        try:
            async with service.ctx.db.transaction() as tx:
                await respond_approval(
                    tx,
                    tenant.id,
                    rem["approval"]["id"],
                    decision="approved",
                    actor="admin@example.com",
                    notes=None,
                    now_ms=deadline - 1,
                )
        except Conflict:  # the sweeper was first (invalid_transition)
            return False
        return True

    try:
        sweeper = ApprovalSweeper(second_db, FrozenClock(deadline + 1))
        *answered, expired = await asyncio.gather(*(answer(r) for r in made), sweeper.sweep())
    finally:
        await second_db.dispose()
    assert sum(answered) + expired == len(made)
    resolved = await events(service, tenant, event="approval.resolved")
    assert sorted(e["data"]["approvalId"] for e in resolved) == sorted(
        r["approval"]["id"] for r in made
    )
    by_approval = {e["data"]["approvalId"]: e["data"]["decision"] for e in resolved}
    for rem, won in zip(made, answered, strict=True):
        got = (
            await service.client.get(f"/v1/remediations/{rem['id']}", headers=tenant.admin_headers)
        ).json()
        expected = ("approved", "approved") if won else ("expired", "rejected")
        assert (by_approval[rem["approval"]["id"]], got["status"]) == expected
        assert got["approval"]["status"] == expected[0]
    assert len(await events(service, tenant, event="remediation.approved")) == sum(answered)
    assert len(await events(service, tenant, event="remediation.rejected")) == expired


async def test_the_expiry_job_runs_inside_serve(tmp_path: Path):
    """Registered as a worker component: on SQLite `serve` runs it on its own."""
    settings = make_settings(tmp_path, approval_ttl_seconds=1, approval_sweep_seconds=0.05)
    async with running_service(settings) as service:
        tenant = await service.tenant("acme")
        rem = await propose(service, tenant, await incident(service, tenant))
        async with asyncio.timeout(10):
            while not (found := await events(service, tenant, event="approval.resolved")):
                await asyncio.sleep(0.05)
        assert found[0]["data"]["decision"] == "expired"
        assert found[0]["data"]["approvalId"] == rem["approval"]["id"]
        await asyncio.sleep(0.2)  # a few more sweeps change nothing
        assert len(await events(service, tenant, event="approval.resolved")) == 1
        assert len(await events(service, tenant, event="remediation.rejected")) == 1
