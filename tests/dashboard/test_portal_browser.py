"""Portal links in headless Chromium against a real `causeflow serve` (SQLite): a viewer link
shows one tenant's subscriptions with nothing to change, an admin link creates one through the
form, a link opens once, and portal pages load in a frame of the configured site only.

The embedding page is served on loopback on another port: the same site as the service, so the
session's `SameSite=Lax` cookie goes along over plain http (a frame on another site needs
https: docs/deploying.md, "Portal links").
"""

from __future__ import annotations

import html
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
import pytest_asyncio

from tests.support.browser import ARTIFACTS, chromium, new_page, require_browser
from tests.support.processes import Deployment, ServiceProcess

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

ENV = {
    "CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0",
    "CAUSEFLOW_WEBHOOK_ALLOW_HTTP": "true",
    "CAUSEFLOW_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
}
SHOTS = ARTIFACTS / "screenshots"


@dataclass
class Stack:
    server: ServiceProcess
    acme: dict[str, str]
    globex: dict[str, str]
    embedder: str  # the product's site: it may frame portal pages

    def api(self, creds: dict[str, str]) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.server.base_url, headers={"X-API-Key": creds["apiKey"]}, timeout=10
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_browser()
    tmp = tmp_path_factory.mktemp("portal")
    with _embedder() as embedder, Deployment(tmp, env=ENV) as deployment:
        acme = deployment.create_tenant("acme")
        globex = deployment.create_tenant("globex")
        server = deployment.add_server(CAUSEFLOW_PORTAL_FRAME_ANCESTORS=embedder)
        yield Stack(server, acme, globex, embedder)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(stack: Stack) -> AsyncIterator[Any]:
    async with chromium() as b:
        yield b


async def _link(stack: Stack, role: str) -> str:
    async with stack.api(stack.acme) as api:
        response = await api.post("/v1/portal-links", json={"role": role})
    assert response.status_code == 201, response.text
    return str(response.json()["url"])


async def _subscription(stack: Stack, creds: dict[str, str], url: str) -> dict[str, Any]:
    async with stack.api(creds) as api:
        response = await api.post(
            "/v1/webhook-subscriptions", json={"url": url, "events": ["incident.created"]}
        )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _shoot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def test_a_viewer_link_shows_one_tenants_subscriptions_read_only(
    stack: Stack, browser: Any
) -> None:
    ours = await _subscription(stack, stack.acme, "http://127.0.0.1:9/acme-hook")
    await _subscription(stack, stack.globex, "http://127.0.0.1:9/globex-hook")
    link = await _link(stack, "viewer")
    async with new_page(browser) as (page, log):
        await page.goto(link)
        await page.wait_for_url("**/ui/subscriptions")
        await _shoot(page, "portal-viewer-subscriptions")
        body = await page.inner_text("main")
        assert "acme-hook" in body and "globex-hook" not in body, log
        assert await page.get_by_role("button", name="Create subscription").count() == 0
        nav = await page.inner_text("header nav")
        assert "Subscriptions" in nav and "Incidents" not in nav
        await page.get_by_role("link", name="http://127.0.0.1:9/acme-hook").click()
        await page.wait_for_url(f"**/ui/subscriptions/{ours['id']}")
        for control in ("Delete", "Rotate secret", "Disable", "Save changes", "Send test event"):
            assert await page.get_by_role("button", name=control).count() == 0, control
        response = await page.goto(link.split("/ui/portal")[0] + "/ui/incidents")
        assert response is not None and response.status == 404
        assert not log.errors, log
    # The same link again, in another browser: spent.
    async with new_page(browser) as (page, _):
        response = await page.goto(link)
        assert response is not None and response.status == 401
        assert "expired or invalid" in await page.inner_text("main")
        await _shoot(page, "portal-link-spent")


async def test_an_admin_link_creates_a_subscription_through_the_form(
    stack: Stack, browser: Any
) -> None:
    async with new_page(browser) as (page, log):
        await page.goto(await _link(stack, "admin"))
        await page.wait_for_url("**/ui/subscriptions")
        await page.get_by_label("Endpoint URL").fill("http://127.0.0.1:9/made-in-portal")
        await page.get_by_role("button", name="Create subscription").click()
        await page.wait_for_load_state()
        await _shoot(page, "portal-admin-created")
        assert "Subscription created" in await page.inner_text("main"), log
    async with stack.api(stack.acme) as api:
        listed = (await api.get("/v1/webhook-subscriptions")).json()["items"]
    assert "http://127.0.0.1:9/made-in-portal" in [s["url"] for s in listed]


@contextmanager
def _embedder() -> Iterator[str]:
    """A product's page on loopback that frames the link it is given (`/embed?src=…`)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            src = parse_qs(urlsplit(self.path).query).get("src", [""])[0]
            body = (
                "<!doctype html><title>product</title>"
                f'<iframe src="{html.escape(src)}" width="900" height="700"></iframe>'
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def _framed(browser: Any, origin: str, link: str, name: str) -> str:
    """The text of the portal as framed by a page of `origin` ("" when it was refused)."""
    from playwright.async_api import Error as PlaywrightError

    async with new_page(browser) as (page, _):
        await page.goto(f"{origin}/embed?src={quote(link, safe='')}")
        frame = page.frame_locator("iframe")
        text = ""
        try:
            text = await frame.locator("main").inner_text(timeout=5000)
        except PlaywrightError:  # a refused frame holds no page of the service
            text = ""
        await _shoot(page, f"portal-framed-{name}")
        return text


async def test_portal_pages_load_only_in_a_frame_of_the_configured_site(
    stack: Stack, browser: Any
) -> None:
    await _subscription(stack, stack.acme, "http://127.0.0.1:9/framed-hook")
    with _embedder() as stranger:
        refused = await _framed(browser, stranger, await _link(stack, "viewer"), "refused")
    assert "Webhook subscriptions" not in refused
    text = await _framed(browser, stack.embedder, await _link(stack, "viewer"), "allowed")
    assert "Webhook subscriptions" in text and "framed-hook" in text
