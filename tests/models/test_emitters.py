"""Every catalog type is emitted by a real operation of the API, with a schema-valid `data`.

For each of the 22 types the operation its catalog entry names is performed over HTTP, then
`GET /v1/events` must show an event of that type after the operation, valid against the
type's schema. A catalog type without an emitter here fails the test.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from causeflow_sdk.models import CATALOG, CATALOG_TYPES, sample_data, validate_data
from tests.support.inproc import Service, Tenant
from tests.support.steps import (
    api_key,
    events,
    events_after,
    incident,
    last_event_id,
    propose,
)

pytestmark = pytest.mark.integration


@dataclass
class World:
    service: Service
    tenant: Tenant
    producer: dict[str, str]  # an events:publish key, as an investigation engine holds
    counter: list[int] = field(default_factory=lambda: [0])

    @property
    def client(self) -> Any:
        return self.service.client

    @property
    def admin(self) -> dict[str, str]:
        return self.tenant.admin_headers

    def unique(self, prefix: str) -> str:
        self.counter[0] += 1
        return f"{prefix}{self.counter[0]}"

    async def ok(self, method: str, url: str, headers: dict[str, str], body: Any = None) -> Any:
        resp = await self.client.request(method, url, headers=headers, json=body)
        assert resp.status_code < 300, f"{method} {url}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content else None


# An emitter performs the operation and returns (route it used, headers to read the log with:
# None for the world's tenant).
Emitter = Callable[[World], Awaitable[tuple[str, dict[str, str] | None]]]


async def tenant_created(w: World) -> tuple[str, dict[str, str] | None]:
    ctx = w.service.ctx
    platform = ctx.tokens.mint_platform_admin(now=ctx.clock.now(), ttl=600)
    made = await w.ok(
        "POST", "/v1/tenants", {"Authorization": f"Bearer {platform}"}, {"name": "Initech"}
    )
    return "POST /v1/tenants", {"X-API-Key": made["apiKey"]}


async def tenant_updated(w: World) -> tuple[str, dict[str, str] | None]:
    await w.ok("PATCH", "/v1/tenant", w.admin, {"name": w.unique("Acme ")})
    return "PATCH /v1/tenant", None


async def _user(w: World) -> str:
    made = await w.ok("POST", "/v1/users", w.admin, {"email": f"{w.unique('u')}@acme.example"})
    return str(made["id"])


async def user_created(w: World) -> tuple[str, dict[str, str] | None]:
    await _user(w)
    return "POST /v1/users", None


async def user_updated(w: World) -> tuple[str, dict[str, str] | None]:
    await w.ok("PATCH", f"/v1/users/{await _user(w)}", w.admin, {"role": "admin"})
    return "PATCH /v1/users/{id}", None


async def user_deleted(w: World) -> tuple[str, dict[str, str] | None]:
    await w.ok("DELETE", f"/v1/users/{await _user(w)}", w.admin)
    return "DELETE /v1/users/{id}", None


async def incident_created(w: World) -> tuple[str, dict[str, str] | None]:
    await incident(w.service, w.tenant)
    return "POST /v1/incidents", None


async def incident_status_changed(w: World) -> tuple[str, dict[str, str] | None]:
    inc = await incident(w.service, w.tenant)
    await w.ok("PATCH", f"/v1/incidents/{inc}", w.admin, {"status": "triaging"})
    return "PATCH /v1/incidents/{id}", None


def published(event_type: str) -> Emitter:
    async def emit(w: World) -> tuple[str, dict[str, str] | None]:
        data = sample_data(event_type, incidentId=await incident(w.service, w.tenant))
        await w.ok("POST", "/v1/events", w.producer, {"event": event_type, "data": data})
        return "POST /v1/events", None

    return emit


async def _proposal(w: World, requires_approval: bool) -> dict[str, Any]:
    inc = await incident(w.service, w.tenant)
    return await propose(
        w.service, w.tenant, inc, requires_approval=requires_approval, headers=w.producer
    )


async def remediation_proposed(w: World) -> tuple[str, dict[str, str] | None]:
    await _proposal(w, requires_approval=False)
    return "POST /v1/incidents/{id}/remediations", None


async def remediation_approved(w: World) -> tuple[str, dict[str, str] | None]:
    rem = await _proposal(w, requires_approval=True)
    await w.ok("POST", f"/v1/remediations/{rem['id']}/approve", w.admin)
    return "POST /v1/remediations/{id}/approve", None


async def remediation_rejected(w: World) -> tuple[str, dict[str, str] | None]:
    rem = await _proposal(w, requires_approval=True)
    await w.ok("POST", f"/v1/remediations/{rem['id']}/reject", w.admin, {"reason": "risky"})
    return "POST /v1/remediations/{id}/reject", None


async def remediation_executed(w: World) -> tuple[str, dict[str, str] | None]:
    rem = await _proposal(w, requires_approval=False)
    body = {"outcome": "success", "durationMs": 1200}
    await w.ok("POST", f"/v1/remediations/{rem['id']}/executed", w.producer, body)
    return "POST /v1/remediations/{id}/executed", None


async def approval_requested(w: World) -> tuple[str, dict[str, str] | None]:
    await _proposal(w, requires_approval=True)
    return "POST /v1/incidents/{id}/remediations", None


async def approval_resolved(w: World) -> tuple[str, dict[str, str] | None]:
    rem = await _proposal(w, requires_approval=True)
    url = f"/v1/notifications/approvals/{rem['approval']['id']}/respond"
    await w.ok("POST", url, w.admin, {"decision": "approved", "notes": "ok"})
    return "POST /v1/notifications/approvals/{id}/respond", None


async def _integration(w: World) -> str:
    made = await w.ok("POST", "/v1/integrations", w.admin, {"provider": "pagerduty"})
    return str(made["id"])


async def integration_connected(w: World) -> tuple[str, dict[str, str] | None]:
    await _integration(w)
    return "POST /v1/integrations", None


async def integration_disconnected(w: World) -> tuple[str, dict[str, str] | None]:
    await w.ok("DELETE", f"/v1/integrations/{await _integration(w)}", w.admin)
    return "DELETE /v1/integrations/{id}", None


async def _trigger(w: World) -> str:
    body = {"slug": w.unique("on-deploy-"), "provider": "github", "action": "open_incident"}
    return str((await w.ok("POST", "/v1/triggers", w.admin, body))["id"])


async def trigger_created(w: World) -> tuple[str, dict[str, str] | None]:
    await _trigger(w)
    return "POST /v1/triggers", None


async def trigger_deleted(w: World) -> tuple[str, dict[str, str] | None]:
    await w.ok("DELETE", f"/v1/triggers/{await _trigger(w)}", w.admin)
    return "DELETE /v1/triggers/{id}", None


async def trigger_event_received(w: World) -> tuple[str, dict[str, str] | None]:
    body = {"action": "deployment_status", "state": "failure"}
    await w.ok("POST", f"/v1/triggers/{await _trigger(w)}/events", w.producer, body)
    return "POST /v1/triggers/{id}/events", None


EMITTERS: dict[str, Emitter] = {
    "tenant.created": tenant_created,
    "tenant.updated": tenant_updated,
    "user.created": user_created,
    "user.updated": user_updated,
    "user.deleted": user_deleted,
    "incident.created": incident_created,
    "incident.status_changed": incident_status_changed,
    "investigation.progress": published("investigation.progress"),
    "investigation.completed": published("investigation.completed"),
    "investigation.known_solution_found": published("investigation.known_solution_found"),
    "remediation.proposed": remediation_proposed,
    "remediation.approved": remediation_approved,
    "remediation.rejected": remediation_rejected,
    "remediation.executed": remediation_executed,
    "approval.requested": approval_requested,
    "approval.resolved": approval_resolved,
    "integration.connected": integration_connected,
    "integration.disconnected": integration_disconnected,
    "trigger.created": trigger_created,
    "trigger.deleted": trigger_deleted,
    "trigger.event_received": trigger_event_received,
    "knowledge.pattern_extracted": published("knowledge.pattern_extracted"),
}


def test_every_catalog_type_has_an_emitter() -> None:
    assert len(CATALOG_TYPES) == 22
    missing = sorted(set(CATALOG_TYPES) - set(EMITTERS))
    assert not missing, f"catalog types with no emitting operation: {missing}"
    assert set(EMITTERS) <= set(CATALOG_TYPES)


async def test_each_type_is_emitted_by_its_operation(service: Service, tenant: Tenant):
    served = await service.client.get("/v1/event-types")
    served_names = {t["name"] for t in served.json()["items"]}
    assert set(CATALOG_TYPES) <= served_names
    world = World(service, tenant, await api_key(service, tenant, "events:publish"))
    problems: list[str] = []
    for event_type in CATALOG_TYPES:
        emitter = EMITTERS.get(event_type)
        if emitter is None:
            problems.append(f"{event_type}: no emitter")
            continue
        mark = await last_event_id(service, tenant)
        route, headers = await emitter(world)
        if route not in CATALOG[event_type].emitted_by:
            problems.append(f"{event_type}: {route} is not its documented emitter")
        # an operation on another tenant (tenant.created) is read from that tenant's whole log
        logged = (
            await events(service, tenant, headers=headers)
            if headers
            else await events_after(service, tenant, mark)
        )
        found = [e for e in logged if e["event"] == event_type]
        if not found:
            problems.append(f"{event_type}: {route} emitted no such event")
            continue
        for envelope in found:
            validate_data(event_type, envelope["data"])
            assert "test" not in envelope, envelope
    assert not problems, "\n".join(problems)
