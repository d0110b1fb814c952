"""Keys from a JWKS URL are fetched off the request path: a slow or failing identity provider
holds up no other request, concurrent misses share one fetch, unknown key ids between refreshes
are refused without a fetch, new keys arrive with the background refresh, and keys already held
keep working while the provider is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from pydantic import ValidationError

from causeflow.settings import Settings
from tests.support.inproc import make_settings, running_service
from tests.support.jwks import JwksServer, new_signing_key


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer().start()
    try:
        yield server
    finally:
        server.stop()


def _bearer(key: Any, kid: str, tenant_id: str) -> dict[str, str]:
    claims = {
        "iss": "causeflow",
        "aud": "causeflow-api",
        "sub": "idp-user",
        "tenant_id": tenant_id,
        "roles": ["member"],
        "exp": int(time.time()) + 600,
    }
    token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})
    return {"Authorization": f"Bearer {token}"}


def _settings(tmp_path: Path, server: JwksServer, **overrides: Any) -> Settings:
    return make_settings(tmp_path, jwks_url=server.url, jwks_allow_http=True, **overrides)


@pytest.mark.integration
async def test_a_slow_jwks_holds_up_nothing_else_and_misses_share_one_fetch(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    key, jwk = new_signing_key("k1")
    jwks_server.keys = [jwk]
    jwks_server.hold()  # the provider takes its time with the first fetch
    settings = _settings(
        tmp_path, jwks_server, jwks_timeout_seconds=10, jwks_min_refresh_seconds=3600
    )
    async with running_service(settings) as svc:
        acme = await svc.tenant()
        client = svc.client
        known = _bearer(key, "k1", acme.id)
        strangers = [_bearer(key, f"made-up-{i}", acme.id) for i in range(5)]
        waiting = [
            asyncio.create_task(client.get("/v1/events", headers=h)) for h in [known, *strangers]
        ]
        assert await asyncio.to_thread(jwks_server.wait_holding, 5)
        # While the key set is being fetched, everything else is answered: each answer comes
        # while the provider still holds the fetch (it holds it until released).
        for path, headers in (
            ("/healthz", {}),
            ("/v1/events", acme.key_headers),
            ("/v1/events", svc.token(acme)),
        ):
            response = await client.get(path, headers=headers)
            assert response.status_code == 200, response.text
            assert jwks_server.holding, f"{path} was answered only once the fetch had ended"
        assert not any(task.done() for task in waiting)

        jwks_server.release()
        first, *refused = await asyncio.gather(*waiting)
        assert first.status_code == 200, first.text
        for response in refused:
            assert response.status_code == 401
            assert response.json()["error"] == "invalid_token"
        assert jwks_server.hits == 1  # six tokens, one fetch

        # Between refreshes an unknown key id is refused from the keys held: no fetch.
        for headers in strangers:
            response = await client.get("/v1/events", headers=headers)
            assert response.status_code == 401
        assert jwks_server.hits == 1


@pytest.mark.integration
async def test_a_key_added_to_the_jwks_is_used_after_the_background_refresh(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    key, jwk = new_signing_key("k1")
    new_key, new_jwk = new_signing_key("k2")
    jwks_server.keys = [jwk]
    settings = _settings(
        tmp_path, jwks_server, jwks_refresh_seconds=0.3, jwks_min_refresh_seconds=3600
    )
    async with running_service(settings) as svc:
        acme = await svc.tenant()
        assert await asyncio.to_thread(jwks_server.wait_hits, 1)
        response = await svc.client.get("/v1/events", headers=_bearer(key, "k1", acme.id))
        assert response.status_code == 200

        jwks_server.keys = [jwk, new_jwk]
        seen = jwks_server.hits
        # Refreshes follow one another: once a second one has begun, the first that began
        # after the key was added has been taken in.
        assert await asyncio.to_thread(jwks_server.wait_hits, seen + 2)
        response = await svc.client.get("/v1/events", headers=_bearer(new_key, "k2", acme.id))
        assert response.status_code == 200, response.text


@pytest.mark.integration
async def test_keys_held_keep_working_while_the_jwks_server_fails_hangs_or_is_gone(
    tmp_path: Path, jwks_server: JwksServer
) -> None:
    key, jwk = new_signing_key("k1")
    jwks_server.keys = [jwk]
    settings = _settings(
        tmp_path,
        jwks_server,
        jwks_refresh_seconds=0.2,
        jwks_min_refresh_seconds=0.2,
        jwks_timeout_seconds=10,
    )
    async with running_service(settings) as svc:
        acme = await svc.tenant()
        known = _bearer(key, "k1", acme.id)
        assert await asyncio.to_thread(jwks_server.wait_hits, 1)
        assert (await svc.client.get("/v1/events", headers=known)).status_code == 200

        jwks_server.mode = "error"
        seen = jwks_server.hits
        assert await asyncio.to_thread(jwks_server.wait_hits, seen + 2)  # refreshes failed
        assert (await svc.client.get("/v1/events", headers=known)).status_code == 200
        stranger = _bearer(key, "made-up", acme.id)
        assert (await svc.client.get("/v1/events", headers=stranger)).status_code == 401

        jwks_server.hold()  # a refresh hangs: a known key does not wait for it
        assert await asyncio.to_thread(jwks_server.wait_holding, 5)
        assert (await svc.client.get("/v1/events", headers=known)).status_code == 200
        assert jwks_server.holding, "answered only once the refresh had ended"

        jwks_server.stop()  # gone altogether
        assert (await svc.client.get("/v1/events", headers=known)).status_code == 200


@pytest.mark.unit
def test_the_jwks_url_must_be_https_unless_plain_http_is_allowed(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path, jwks_url="https://idp.example/jwks.json").jwks_url
    for url in ("http://idp.example/jwks.json", "file:///etc/jwks.json", "idp.example/jwks"):
        with pytest.raises(ValidationError, match="CAUSEFLOW_JWKS"):
            Settings(data_dir=tmp_path, jwks_url=url)
    allowed = Settings(data_dir=tmp_path, jwks_url="http://127.0.0.1:9/j", jwks_allow_http=True)
    assert allowed.jwks_allow_http
