"""Tenant isolation, driven by the route table: for every route that takes a resource id,
tenant A's credentials on tenant B's id find nothing readable or writable (404), and B's
resource is unchanged afterwards.

Every path parameter must have a factory below that creates such a resource for a tenant; a
new route with an unknown parameter fails this test until one is added.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from tests.support.inproc import Service, Tenant

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


FACTORIES: dict[str, Factory] = {
    "user_id": _user,
    "key_id": _key,
}

# Valid bodies, so that a 404 is the tenant check speaking and not body validation.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/users/{user_id}"): {"role": "admin"},
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
