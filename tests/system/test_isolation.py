"""Tenant isolation, driven by the route table: for every route that takes a resource id,
tenant A's credentials on tenant B's id find nothing readable or writable (404), and B's
resource is unchanged afterwards.

Every path parameter must have a factory below that creates such a resource for a tenant; a
new route with an unknown parameter fails this test until one is added.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from causeflow.clock import ms_to_rfc3339
from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration

Factory = Callable[[Service, Tenant], Awaitable[str]]

# Routes outside tenant data: platform management, the public catalog, the inbound endpoint
# (its tenant id is in the path and authenticated against the key: tested with the providers).
EXEMPT = re.compile(r"^/v1/(tenants|event-types|webhooks/\{tenant_id\})")


async def _user(service: Service, tenant: Tenant) -> str:
    resp = await service.client.post(
        "/v1/users",
        headers=tenant.admin_headers,
        json={"email": f"u{secrets.token_hex(4)}@b.example"},
    )
    return resp.json()["id"]


async def _key(service: Service, tenant: Tenant) -> str:
    resp = await service.client.post(
        "/v1/api-keys",
        headers=tenant.admin_headers,
        json={"name": "victim", "scopes": ["events:read"]},
    )
    return resp.json()["id"]


async def _proposal(service: Service, tenant: Tenant) -> dict[str, Any]:
    incident = await service.client.post(
        "/v1/incidents", headers=tenant.admin_headers, json={"title": "victim", "severity": "low"}
    )
    resp = await service.client.post(
        f"/v1/incidents/{incident.json()['id']}/remediations",
        headers=tenant.admin_headers,
        json={"title": "victim", "steps": ["a"], "requiresApproval": True},
    )
    return resp.json()  # type: ignore[no-any-return]


async def _remediation(service: Service, tenant: Tenant) -> str:
    return str((await _proposal(service, tenant))["id"])


async def _approval(service: Service, tenant: Tenant) -> str:
    return str((await _proposal(service, tenant))["approval"]["id"])


async def _integration(service: Service, tenant: Tenant) -> str:
    resp = await service.client.post(
        "/v1/integrations", headers=tenant.admin_headers, json={"provider": "slack"}
    )
    return str(resp.json()["id"])


async def _trigger(service: Service, tenant: Tenant) -> str:
    resp = await service.client.post(
        "/v1/triggers",
        headers=tenant.admin_headers,
        json={"slug": f"t{secrets.token_hex(4)}", "provider": "github", "action": "victim"},
    )
    return str(resp.json()["id"])


async def _incident(service: Service, tenant: Tenant) -> str:
    resp = await service.client.post(
        "/v1/incidents", headers=tenant.admin_headers, json={"title": "victim", "severity": "low"}
    )
    return resp.json()["id"]


async def _subscription(service: Service, tenant: Tenant) -> str:
    resp = await service.client.post(
        "/v1/webhook-subscriptions",
        headers=tenant.admin_headers,
        json={"url": "https://hooks.example.com/victim", "events": ["*"]},
    )
    return resp.json()["id"]


async def _delivery(service: Service, tenant: Tenant) -> str:
    sub = await _subscription(service, tenant)
    resp = await service.client.post(
        f"/v1/webhook-subscriptions/{sub}/test", headers=tenant.admin_headers, json={}
    )
    return resp.json()["id"]


FACTORIES: dict[str, Factory] = {
    "subscription_id": _subscription,
    "delivery_id": _delivery,
    "incident_id": _incident,
    "user_id": _user,
    "key_id": _key,
    "remediation_id": _remediation,
    "approval_id": _approval,
    "integration_id": _integration,
    "trigger_id": _trigger,
}

# Valid bodies, so that a 404 is the tenant check speaking and not body validation.
_WINDOW = {"since": ms_to_rfc3339(int(time.time() * 1000) - 86_400_000)}

BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/webhook-subscriptions/{subscription_id}"): {"description": "x"},
    ("POST", "/v1/webhook-subscriptions/{subscription_id}/recover"): _WINDOW,
    ("POST", "/v1/webhook-subscriptions/{subscription_id}/replay"): _WINDOW,
    ("POST", "/v1/webhook-subscriptions/{subscription_id}/rotate-secret"): {},
    ("POST", "/v1/webhook-subscriptions/{subscription_id}/test"): {},
    ("PATCH", "/v1/incidents/{incident_id}"): {"status": "triaging"},
    ("PATCH", "/v1/users/{user_id}"): {"role": "admin"},
    ("POST", "/v1/incidents/{incident_id}/remediations"): {
        "title": "t",
        "steps": ["a"],
        "requiresApproval": True,
    },
    ("POST", "/v1/remediations/{remediation_id}/reject"): {"reason": "x"},
    ("POST", "/v1/remediations/{remediation_id}/executed"): {
        "outcome": "success",
        "durationMs": 1,
    },
    ("POST", "/v1/notifications/approvals/{approval_id}/respond"): {"decision": "approved"},
    ("POST", "/v1/triggers/{trigger_id}/events"): {"any": "event"},
}


def _tenant_routes(service: Service) -> list[tuple[str, str, list[str]]]:
    """Every (method, path) of the route table, read from the app's OpenAPI document."""
    app = service.client._transport.app  # type: ignore[attr-defined]
    out = []
    for path, operations in app.openapi()["paths"].items():
        params = re.findall(r"\{(\w+)\}", path)
        if not params or EXEMPT.match(path):
            continue
        for method in sorted(operations):
            out.append((method.upper(), path, params))
    return out


async def test_foreign_ids_are_not_found(service: Service, tenant: Tenant, other_tenant: Tenant):
    routes = _tenant_routes(service)
    assert routes, "no routes with resource ids found"
    missing = sorted({p for _, _, params in routes for p in params} - set(FACTORIES))
    assert not missing, f"add isolation factories for path parameters: {missing}"
    problems = []
    for method, path, params in routes:
        ids = {p: await FACTORIES[p](service, other_tenant) for p in params}
        url = path.format(**ids)
        before = (
            await service.client.get(url, headers=other_tenant.admin_headers)
            if method != "GET"
            else None
        )
        body = BODIES.get((method, path))
        for headers in (tenant.admin_headers, tenant.key_headers):
            resp = await service.client.request(
                method, url, headers=headers, json=body if body is not None else None
            )
            if resp.status_code != 404:
                problems.append(f"{method} {path}: {resp.status_code} {resp.text[:120]}")
            else:
                assert resp.json()["error"].endswith("not_found"), resp.text
        if before is not None and before.status_code == 200:
            after = await service.client.get(url, headers=other_tenant.admin_headers)
            if after.json() != before.json():
                problems.append(f"{method} {path}: changed the other tenant's resource")
    assert not problems, "\n".join(problems)
