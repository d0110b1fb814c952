"""The inbound alert budget belongs to the tenant's keys: requests without one of them (no key,
an unknown or foreign key, a key without `alerts:ingest`, an unknown provider) are budgeted per
client address, so nobody can spend a tenant's budget by posting to its URL."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.inproc import Service, Tenant, make_settings, running_service

pytestmark = pytest.mark.integration

TENANT_LIMIT = 5
REFUSED_LIMIT = 4


@pytest.fixture
def backend() -> str:
    """Budgets are counted in memory before anything is stored: SQLite alone keeps this fast."""
    return "sqlite"


@asynccontextmanager
async def client_at(service: Service, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the same app seen from another address."""
    app = service.client._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://cf.test") as client:
        yield client


def _alert(n: int) -> bytes:
    return orjson.dumps({"externalId": f"disk-{n}", "title": "Disk full"})


async def _post(
    client: httpx.AsyncClient,
    tenant_id: str,
    n: int,
    key: str | None,
    provider: str = "custom",
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-API-Key"] = key
    return await client.post(
        f"/v1/webhooks/{tenant_id}/{provider}", content=_alert(n), headers=headers
    )


async def _read_only_key(service: Service, tenant: Tenant) -> str:
    resp = await service.client.post(
        "/v1/api-keys",
        headers=tenant.admin_headers,
        json={"name": "reader", "scopes": ["events:read"]},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


def _assert_429(resp: httpx.Response, limit: int) -> None:
    assert resp.status_code == 429, resp.text
    body = resp.json()
    assert body["error"] == "rate_limit_exceeded" and body["message"]
    assert int(resp.headers["retry-after"]) >= 1
    assert resp.headers["x-ratelimit-limit"] == str(limit)
    assert resp.headers["x-ratelimit-remaining"] == "0"


async def test_refused_requests_never_spend_the_tenants_budget(tmp_path: Path):
    settings = make_settings(
        tmp_path,
        ingest_rate_limit_per_minute=TENANT_LIMIT,
        ingest_refused_rate_limit_per_minute=REFUSED_LIMIT,
    )
    async with running_service(settings) as service:
        victim, other = await service.tenant("victim"), await service.tenant("other")
        reader = await _read_only_key(service, victim)
        bad_keys: list[tuple[str | None, str, int]] = [
            (None, "custom", 401),
            ("cflo_" + secrets.token_hex(32), "custom", 401),
            (other.ingest_key, "custom", 401),
            (reader, "custom", 403),
            (victim.ingest_key, "zabbix", 404),
        ]
        async with client_at(service, "203.0.113.7") as attacker:
            answers = []
            for n in range(40):
                key, provider, _ = bad_keys[n % len(bad_keys)]
                answers.append(await _post(attacker, victim.id, n, key, provider))
            # The victim's own sender still gets its alerts in, its budget untouched.
            real = await _post(service.client, victim.id, 100, victim.ingest_key)
            assert real.status_code == 202, real.text
            assert real.headers["x-ratelimit-limit"] == str(TENANT_LIMIT)
            assert real.headers["x-ratelimit-remaining"] == str(TENANT_LIMIT - 1)
            # The address's first refusals are answered as such, then it is out of budget.
            for n, resp in enumerate(answers[:REFUSED_LIMIT]):
                assert resp.status_code == bad_keys[n % len(bad_keys)][2], resp.text
                assert resp.json()["error"]
                assert resp.headers["x-ratelimit-limit"] == str(REFUSED_LIMIT)
            for resp in answers[REFUSED_LIMIT:]:
                _assert_429(resp, REFUSED_LIMIT)
            # A valid key is accepted even from the address that used up its budget of
            # refusals: it is never held back by other requests' mistakes.
            shared = await _post(attacker, victim.id, 101, victim.ingest_key)
            assert shared.status_code == 202, shared.text
            assert shared.headers["x-ratelimit-remaining"] == str(TENANT_LIMIT - 2)

        # Another address has its own budget of refusals.
        async with client_at(service, "198.51.100.9") as elsewhere:
            resp = await _post(elsewhere, victim.id, 200, None)
            assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"

        # The tenant's budget is spent by its keys only, and still applies to them.
        for n in range(TENANT_LIMIT - 2):
            resp = await _post(service.client, victim.id, 300 + n, victim.ingest_key)
            assert resp.status_code == 202, resp.text
        _assert_429(await _post(service.client, victim.id, 400, victim.ingest_key), TENANT_LIMIT)
        # A refusal to this tenant's URL is still a refusal, not its budget's 429.
        resp = await _post(service.client, victim.id, 401, other.ingest_key)
        assert resp.status_code == 401
        # Other tenants are unaffected.
        resp = await _post(service.client, other.id, 402, other.ingest_key)
        assert resp.status_code == 202, resp.text


async def test_invalid_payloads_with_a_valid_key_spend_the_tenants_budget(tmp_path: Path):
    """Once the key is accepted the request is the tenant's, whatever happens next."""
    settings = make_settings(
        tmp_path,
        ingest_rate_limit_per_minute=TENANT_LIMIT,
        ingest_refused_rate_limit_per_minute=REFUSED_LIMIT,
    )
    async with running_service(settings) as service:
        tenant = await service.tenant("acme")
        headers = {"Content-Type": "application/json", "X-API-Key": tenant.ingest_key}
        url = f"/v1/webhooks/{tenant.id}/custom"
        for n in range(TENANT_LIMIT):
            resp = await service.client.post(url, content=b"{not json", headers=headers)
            assert resp.status_code == 400, resp.text
            assert resp.headers["x-ratelimit-remaining"] == str(TENANT_LIMIT - n - 1)
        _assert_429(await _post(service.client, tenant.id, 0, tenant.ingest_key), TENANT_LIMIT)


async def test_bad_credentials_elsewhere_get_429_once_their_address_is_out_of_budget(
    tmp_path: Path,
):
    async with running_service(make_settings(tmp_path, rate_limit_per_minute=3)) as service:
        tenant = await service.tenant("acme")
        bad = {"X-API-Key": "cflo_" + secrets.token_hex(32)}
        codes = [
            (await service.client.get("/v1/events", headers=bad)).status_code for _ in range(5)
        ]
        assert codes == [401, 401, 401, 429, 429]
        _assert_429(await service.client.get("/v1/events", headers=bad), 3)
        # A valid credential from that address has its tenant's budget.
        ok = await service.client.get("/v1/events", headers=tenant.key_headers)
        assert ok.status_code == 200, ok.text
