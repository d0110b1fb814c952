"""Probes of portal links from outside: a link presented where other credentials go, odd
lifetimes, and the link's token kept out of the access log and of the Referer."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from causeflow.logtext import JsonFormatter
from tests.support.clock import FrozenClock
from tests.support.dashboard import sign_in
from tests.support.inproc import Service, Tenant, make_settings, running_service

pytestmark = pytest.mark.integration


@pytest.fixture
async def svc(tmp_path: Path) -> AsyncIterator[Service]:
    clock = FrozenClock(int(time.time() * 1000) - 7_200_000)
    async with running_service(make_settings(tmp_path), clock) as service:
        yield service


async def test_a_link_is_no_credential_anywhere_else(svc: Service) -> None:
    acme = await svc.tenant("acme")
    created = await svc.client.post(
        "/v1/portal-links", headers=acme.admin_headers, json={"role": "admin"}
    )
    token = parse_qs(urlsplit(created.json()["url"]).query)["link"][0]
    for headers in ({"Authorization": f"Bearer {token}"}, {"X-API-Key": token}):
        refused = await svc.client.get("/v1/webhook-subscriptions", headers=headers)
        assert refused.status_code == 401, headers
        assert (
            await svc.client.post("/v1/portal-links", headers=headers, json={"role": "admin"})
        ).status_code == 401
    stream = await svc.client.get("/v1/notifications/stream", params={"token": token})
    assert stream.status_code == 401
    # Nor does the sign-in form take it (it opens no session there, and is not spent).
    async with httpx.AsyncClient(
        transport=svc.client._transport, base_url="http://cf.test"
    ) as browser:
        signed = await sign_in(browser, token)
        assert signed.status_code == 401
        assert not any(
            c.startswith("cf_session=ses_") for c in signed.headers.get_list("set-cookie")
        )
        assert (await browser.get("/ui/subscriptions")).status_code == 303
        assert (await browser.get("/ui/portal", params={"link": token})).status_code == 303


@pytest.mark.parametrize("expires_in", [300.0, 300.5, -1, 29, True, 10**30, None, "1e3"])
async def test_odd_lifetimes_are_refused(svc: Service, expires_in: object) -> None:
    acme = await svc.tenant("acme")
    response = await svc.client.post(
        "/v1/portal-links",
        headers=acme.admin_headers,
        json={"role": "viewer", "expiresIn": expires_in},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"


async def test_the_link_stays_out_of_the_log_and_the_referer(svc: Service) -> None:
    acme = await svc.tenant("acme")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = logging.getLogger("causeflow.access").level
    logging.getLogger("causeflow.access").setLevel(logging.INFO)
    try:
        created = await svc.client.post(
            "/v1/portal-links", headers=acme.admin_headers, json={"role": "viewer"}
        )
        url = urlsplit(created.json()["url"])
        token = parse_qs(url.query)["link"][0]
        async with httpx.AsyncClient(
            transport=svc.client._transport, base_url="http://cf.test"
        ) as browser:
            opened = await browser.get(f"{url.path}?{url.query}")
            again = await browser.get(f"{url.path}?{url.query}&x=1")
            refused = await browser.get("/ui/portal", params={"link": token + "x"})
            page = await browser.get("/ui/subscriptions")
    finally:
        root.removeHandler(handler)
        logging.getLogger("causeflow.access").setLevel(level)
    assert opened.status_code == 303 and refused.status_code == 401 and page.status_code == 200
    assert again.status_code == 303
    text = stream.getvalue()
    assert "/ui/portal" in text  # the route template was logged
    assert token not in text and token[:40] not in text and "link=" not in text
    # Pages a link leads to send no Referer to other sites (the link's page neither).
    for response in (opened, refused, page):
        assert response.headers["referrer-policy"] in ("same-origin", "no-referrer")
    for response in (refused, page):
        assert response.headers["cache-control"] == "no-store"


async def test_fifty_visits_at_once_open_one_session_on_either_backend(
    service: Service, tenant: Tenant
) -> None:
    created = await service.client.post(
        "/v1/portal-links", headers=tenant.admin_headers, json={"role": "admin"}
    )
    url = urlsplit(created.json()["url"])
    link = f"{url.path}?{url.query}"
    browsers = [
        httpx.AsyncClient(transport=service.client._transport, base_url="http://cf.test")
        for _ in range(50)
    ]
    try:
        answers = await asyncio.gather(*(b.get(link) for b in browsers))
        assert sorted(a.status_code for a in answers) == [303] + [401] * 49
        cookies = [a for a in answers if "set-cookie" in a.headers]
        assert len(cookies) == 1
        reached = await asyncio.gather(*(b.get("/ui/subscriptions") for b in browsers))
        assert sorted(r.status_code for r in reached) == [200] + [303] * 49
    finally:
        await asyncio.gather(*(b.aclose() for b in browsers))
