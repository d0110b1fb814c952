"""A portal link minted with an API key stands only while that key does: revoking the key
refuses the link it minted and ends the sessions such links opened."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.clock import FrozenClock
from tests.support.inproc import Service, Tenant, make_settings, running_service

pytestmark = pytest.mark.integration


@pytest.fixture
async def svc(tmp_path: Path) -> AsyncIterator[Service]:
    clock = FrozenClock(int(time.time() * 1000) - 7_200_000)
    async with running_service(make_settings(tmp_path), clock) as service:
        yield service


def _browser(svc: Service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=svc.client._transport, base_url="http://cf.test")


async def _admin_key(svc: Service, tenant: Tenant) -> tuple[str, str]:
    created = await svc.client.post(
        "/v1/api-keys", headers=tenant.admin_headers, json={"name": "ops", "scopes": ["admin"]}
    )
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["key"]


async def _link(svc: Service, key: str, role: str) -> str:
    response = await svc.client.post(
        "/v1/portal-links", headers={"X-API-Key": key}, json={"role": role}
    )
    assert response.status_code == 201, response.text
    url = urlsplit(response.json()["url"])
    return f"{url.path}?{url.query}"


async def _revoke(svc: Service, tenant: Tenant, key_id: str) -> None:
    revoked = await svc.client.delete(f"/v1/api-keys/{key_id}", headers=tenant.admin_headers)
    assert revoked.status_code == 204, revoked.text


async def test_a_revoked_keys_link_opens_nothing(svc: Service) -> None:
    acme = await svc.tenant("acme")
    key_id, key = await _admin_key(svc, acme)
    link = await _link(svc, key, "admin")
    await _revoke(svc, acme, key_id)
    async with _browser(svc) as browser:
        opened = await browser.get(link)
        assert opened.status_code == 401, opened.text[:300]
        assert "set-cookie" not in opened.headers


async def test_a_revoked_keys_sessions_end(svc: Service) -> None:
    acme = await svc.tenant("acme")
    key_id, key = await _admin_key(svc, acme)
    other_id, other = await _admin_key(svc, acme)
    async with _browser(svc) as browser, _browser(svc) as bystander:
        assert (await browser.get(await _link(svc, key, "admin"))).status_code == 303
        assert (await bystander.get(await _link(svc, other, "viewer"))).status_code == 303
        assert (await browser.get("/ui/subscriptions")).status_code == 200
        await _revoke(svc, acme, key_id)
        gone = await browser.get("/ui/subscriptions")
        assert gone.status_code == 303 and gone.headers["location"].startswith("/ui/login")
        # A link minted with another key, still live, is not touched.
        assert (await bystander.get("/ui/subscriptions")).status_code == 200


async def test_links_minted_with_a_token_are_not_tied_to_a_key(svc: Service) -> None:
    acme = await svc.tenant("acme")
    response = await svc.client.post(
        "/v1/portal-links", headers=acme.admin_headers, json={"role": "viewer"}
    )
    url = urlsplit(response.json()["url"])
    async with _browser(svc) as browser:
        assert (await browser.get(f"{url.path}?{url.query}")).status_code == 303
        assert (await browser.get("/ui/subscriptions")).status_code == 200
