"""A NUL character in a name or other free text the service stores as it is: PostgreSQL text
cannot hold it, so it is refused on every store alike (422 naming the field) rather than kept
by SQLite, where it later breaks `causeflow migrate-store` and differs from PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.inproc import Service

pytestmark = pytest.mark.integration

NUL = "bad\x00name"


async def test_nul_in_stored_text_is_refused(sqlite_service: Service) -> None:
    service = sqlite_service
    acme = await service.tenant("acme")
    token = service.ctx.tokens.mint_platform_admin(now=time.time(), ttl=600)
    platform = {"Authorization": f"Bearer {token}"}
    user = await service.client.post(
        "/v1/users", headers=acme.admin_headers, json={"email": "a@example.com"}
    )
    assert user.status_code == 201, user.text
    cases: list[tuple[str, str, dict[str, str], dict[str, Any], str]] = [
        ("POST", "/v1/tenants", platform, {"name": NUL}, "name"),
        ("PATCH", f"/v1/tenants/{acme.id}", platform, {"name": NUL}, "name"),
        ("PATCH", "/v1/tenant", acme.admin_headers, {"name": NUL}, "name"),
        ("POST", "/v1/api-keys", acme.admin_headers, {"name": NUL, "scopes": ["admin"]}, "name"),
        ("POST", "/v1/users", acme.admin_headers, {"email": "b@example.com", "name": NUL}, "name"),
        ("POST", "/v1/users", acme.admin_headers, {"email": "c\x00@example.com"}, "email"),
        (
            "PATCH",
            f"/v1/users/{user.json()['id']}",
            acme.admin_headers,
            {"name": NUL},
            "name",
        ),
        (
            "POST",
            "/v1/webhook-subscriptions",
            acme.admin_headers,
            {"url": "https://hooks.example.com/x", "events": ["*"], "description": NUL},
            "description",
        ),
    ]
    for method, url, headers, body, field in cases:
        resp = await service.client.request(method, url, headers=headers, json=body)
        assert resp.status_code == 422, f"{method} {url}: {resp.status_code} {resp.text}"
        paths = [e["path"] for e in resp.json()["details"]["errors"]]
        assert field in paths, f"{method} {url}: {paths}"
