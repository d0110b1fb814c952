"""The dashboard in headless Chromium against a real `causeflow serve` (SQLite).

One server, one receiver and one browser serve the whole module (started once, to keep it
fast); each test opens its own browser context (own cookies). Screenshots of every page, also
at 375 px wide, go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from causeflow.ids import new_id
from tests.support.browser import ARTIFACTS, chromium, new_page, require_browser
from tests.support.processes import Deployment, ServiceProcess
from tests.support.receiver import ThreadedReceiver

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

XSS = "<script>alert(1)</script>"
SHOTS = ARTIFACTS / "screenshots"
NARROW = {"width": 375, "height": 812}
ENV = {
    "CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0",
    "CAUSEFLOW_WEBHOOK_ALLOW_HTTP": "true",
    "CAUSEFLOW_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
    "CAUSEFLOW_WEBHOOK_RETRY_SCHEDULE": "1s,1s",
}


@dataclass
class Stack:
    server: ServiceProcess
    receiver: ThreadedReceiver
    creds: dict[str, str]

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, headers={"X-API-Key": self.creds["apiKey"]}, timeout=10
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_browser()  # skips (or fails under CAUSEFLOW_REQUIRE_BROWSER=1) before starting
    tmp = tmp_path_factory.mktemp("dashboard")
    with Deployment(tmp, env=ENV) as deployment, ThreadedReceiver() as receiver:
        creds = deployment.create_tenant("acme")
        server = deployment.add_server()
        yield Stack(server, receiver, creds)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(stack: Stack) -> AsyncIterator[Any]:
    async with chromium() as b:
        yield b


async def shoot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def sign_in(page: Any, stack: Stack) -> None:
    await page.goto("/ui/login")
    await page.get_by_label("API key or token").fill(stack.creds["apiKey"])
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/ui/incidents")


async def wait_until(check: Any, timeout: float = 10.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def publish(stack: Stack, event: str, data: dict[str, Any]) -> dict[str, Any]:
    async with stack.api() as api:
        response = await api.post("/v1/events", json={"event": event, "data": data})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def incident_created(title: str) -> dict[str, Any]:
    return {
        "incidentId": new_id("inc"),
        "title": title,
        "severity": "high",
        "status": "open",
        "source": "manual",
    }


async def unlabelled_fields(page: Any) -> list[str]:
    """Form fields a screen reader could not name."""
    return await page.evaluate(  # type: ignore[no-any-return]
        """() => Array.from(document.querySelectorAll('input, select, textarea'))
            .filter(el => el.type !== 'hidden')
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map(el => el.outerHTML)"""
    )


async def test_sign_in_sets_a_strict_http_only_cookie(stack: Stack, browser: Any) -> None:
    async with new_page(browser, stack.base_url) as (page, log):
        response = await page.goto("/ui/login")
        assert response is not None
        assert "default-src 'self'" in response.headers["content-security-policy"]
        await shoot(page, "login")
        await page.get_by_label("API key or token").fill("cflo_" + "0" * 64)
        await page.get_by_role("button", name="Sign in").click()
        assert await page.locator("#login-error").is_visible()
        await sign_in(page, stack)
        [cookie] = [c for c in await page.context.cookies() if c["name"] == "cf_session"]
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/"
        assert not await page.evaluate("document.cookie.includes('cf_session')")
        assert not log.errors, str(log)

        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url("**/ui/login")
        await page.goto("/ui/subscriptions")
        assert "/ui/login" in page.url


async def test_subscription_test_delivery_reaches_the_receiver(stack: Stack, browser: Any) -> None:
    stack.receiver.clear()
    async with new_page(browser, stack.base_url) as (page, log):
        await sign_in(page, stack)
        await page.get_by_role("link", name="Subscriptions").click()
        await page.get_by_label("Endpoint URL").fill(stack.receiver.url_for("/hook"))
        await page.get_by_label("Description").fill("browser test")
        await page.get_by_label("All events").check()
        await page.get_by_role("button", name="Create subscription").click()
        secret = (await page.locator("#secret").text_content()) or ""
        assert secret.startswith("whsec_")
        await shoot(page, "subscription-secret")
        await page.get_by_role("link", name="Continue to the subscription").click()
        assert secret not in await page.content()  # shown once only
        await shoot(page, "subscription")

        await page.get_by_role("button", name="Send test event").click()
        await page.wait_for_url("**/deliveries?notice=test-sent")
        await stack.receiver.wait_for(1, path="/hook", timeout=10)
        [request] = stack.receiver.requests_for("/hook")
        assert request.json()["test"] is True

        async def succeeded() -> bool:
            await page.reload()
            return await page.locator("#deliveries .badge-succeeded").count() > 0

        await wait_until(succeeded)
        assert await page.locator("svg.chart").is_visible()
        assert "1 attempts succeeded" in (await page.locator("figcaption").text_content() or "")
        assert await page.locator("#backlog").is_visible()
        await shoot(page, "deliveries")
        # the search across subscriptions finds the same delivery
        await page.get_by_role("link", name="Deliveries", exact=True).click()
        await page.wait_for_url("**/ui/deliveries")
        assert await page.locator("#deliveries .badge-succeeded").count() == 1
        await page.go_back()
        await page.locator("#deliveries a").first.click()
        await page.wait_for_url("**/ui/deliveries/msg_*")
        assert await page.get_by_text("200", exact=True).first.is_visible()
        await shoot(page, "delivery")
        assert not log.errors, str(log)


async def test_live_events_appear_and_survive_a_restart(stack: Stack, browser: Any) -> None:
    async with new_page(browser, stack.base_url) as (page, log):
        await sign_in(page, stack)
        await page.goto("/ui/events")
        status = page.locator("#stream-status")
        await page.wait_for_selector("#stream-status[data-state=live]", timeout=10_000)
        await publish(stack, "incident.created", incident_created("live one " + XSS))
        first = page.locator("#tail li", has_text="live one " + XSS)
        await first.wait_for(timeout=10_000)
        assert await page.locator("#tail li script").count() == 0
        await shoot(page, "events")

        # The server goes away and comes back on the same port; the tail resumes by itself.
        await asyncio.to_thread(stack.server.restart)
        await page.wait_for_selector("#stream-status[data-state=live]", timeout=20_000)
        await publish(stack, "incident.created", incident_created("after restart"))
        await page.locator("#tail li", has_text="after restart").wait_for(timeout=15_000)
        assert await page.locator("#tail li", has_text="live one").count() == 1  # no replays
        assert await status.get_attribute("data-state") == "live"

        # Filter: only investigation.progress now.
        await page.locator("details.filters summary").click()
        await page.get_by_label("investigation.progress").check()
        await page.wait_for_url("**/ui/events?events=investigation.progress")
        await page.wait_for_selector("#stream-status[data-state=live]", timeout=10_000)
        await publish(stack, "incident.created", incident_created("filtered out"))
        progress = {
            "incidentId": new_id("inc"),
            "message": "checking the database",
            "agentName": "db-agent",
            "stepIndex": 1,
            "totalSteps": 3,
        }
        shown = await publish(stack, "investigation.progress", progress)
        await page.locator("#tail li", has_text="checking the database").wait_for(timeout=10_000)
        assert await page.locator("#tail li", has_text="filtered out").count() == 0

        await page.locator(f"#tail li[data-event-id='{shown['id']}'] a").click()
        await page.wait_for_url(f"**/ui/events/{shown['id']}?at=*")
        assert "checking the database" in (
            await page.locator("#envelope-json").text_content() or ""
        )
        await shoot(page, "event")
        assert not log.errors, str(log)


async def test_live_events_start_with_the_latest_and_miss_or_repeat_none(
    stack: Stack, browser: Any
) -> None:
    earlier = [
        await publish(stack, "incident.created", incident_created(f"earlier {i}")) for i in range(3)
    ]
    newest, oldest = earlier[2]["id"], earlier[0]["id"]
    between: list[dict[str, Any]] = []
    served: list[str] = []

    async def in_between(route: Any) -> None:
        """The page as the server rendered it, and then, before the browser has it, one more
        event; the stream is also told to resume two events further back than the server said,
        so that two rendered events come again through the stream."""
        response = await route.fetch()
        html = await response.text()
        assert f'data-resume-after="{newest}"' in html
        served.append(html)
        between.append(await publish(stack, "incident.created", incident_created("in between")))
        html = html.replace(f'data-resume-after="{newest}"', f'data-resume-after="{oldest}"')
        await route.fulfill(response=response, body=html)

    async with new_page(browser, stack.base_url) as (page, log):
        await sign_in(page, stack)
        await page.route("**/ui/events", in_between)
        await page.goto("/ui/events")
        rendered = re.findall(r'<li class="event" data-event-id="([^"]+)"', served[0])
        assert rendered[:3] == [e["id"] for e in reversed(earlier)]  # by the server
        assert 3 <= len(rendered) <= 50
        await page.wait_for_selector("#stream-status[data-state=live]", timeout=10_000)
        await page.locator("#tail li", has_text="in between").wait_for(timeout=10_000)
        live = await publish(stack, "incident.created", incident_created("after the page"))
        await page.locator("#tail li", has_text="after the page").wait_for(timeout=10_000)
        shown = await page.locator("#tail li").evaluate_all(
            "items => items.map(item => item.dataset.eventId)"
        )
        assert shown[:5] == [live["id"], between[0]["id"], *[e["id"] for e in reversed(earlier)]]
        assert len(shown) == len(set(shown)) == len(rendered) + 2  # nothing twice, none missed
        await shoot(page, "events-latest")
        assert not log.errors, str(log)


async def test_alert_title_is_text_and_status_moves(stack: Stack, browser: Any) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as client:
        sent = await client.post(
            f"/v1/webhooks/{stack.creds['tenantId']}/custom",
            json={"title": XSS, "severity": "critical", "status": "firing", "externalId": "x1"},
            headers={"X-API-Key": stack.creds["ingestKey"]},
        )
    assert sent.status_code == 202, sent.text
    async with new_page(browser, stack.base_url) as (page, log):
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
        await sign_in(page, stack)
        title = page.get_by_text(XSS, exact=True)
        assert await title.first.is_visible()
        await shoot(page, "incidents")
        await title.first.click()
        await page.wait_for_url("**/ui/incidents/inc_*")
        assert await page.locator("#incident-title").text_content() == XSS
        assert await page.locator("#alerts .alert-title").first.text_content() == XSS
        buttons = await page.locator("button[name=status]").evaluate_all(
            "bs => bs.map(b => b.value)"
        )
        assert set(buttons) == {
            "triaging",
            "investigating",
            "awaiting_approval",
            "resolved",
            "closed",
        }
        await page.get_by_role("button", name="Move to triaging").click()
        await page.wait_for_url("**notice=status-changed")
        assert (await page.locator("#incident-status").text_content() or "").strip() == "triaging"
        assert not await page.get_by_role("button", name="Move to triaging").count()
        await shoot(page, "incident")
        await page.goto("/ui/approvals")
        await shoot(page, "approvals")
        assert dialogs == []
        assert not log.errors, str(log)


async def test_csrf_cookie_and_stream_over_the_real_server(stack: Stack, browser: Any) -> None:
    async with new_page(browser, stack.base_url) as (page, _log):
        await sign_in(page, stack)
        [cookie] = [c for c in await page.context.cookies() if c["name"] == "cf_session"]
    jar = {"cf_session": cookie["value"]}
    async with httpx.AsyncClient(base_url=stack.base_url, cookies=jar, timeout=10) as client:
        form = {"url": stack.receiver.url_for("/x"), "events": "*"}
        refused = await client.post("/ui/subscriptions", data=form)
        assert refused.status_code == 403
        assert "default-src 'self'" in refused.headers["content-security-policy"]
        assert refused.headers["x-frame-options"] == "DENY"
        # The stream takes the session cookie as its credential.
        async with client.stream("GET", "/v1/notifications/stream") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
        client.cookies.set("cf_session", "ses_unknown")
        async with client.stream("GET", "/v1/notifications/stream") as stream:
            assert stream.status_code == 401


async def test_pages_fit_a_narrow_screen_and_are_labelled(stack: Stack, browser: Any) -> None:
    async with new_page(browser, stack.base_url, viewport=NARROW) as (page, log):
        await page.goto("/ui/login")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.className") == "skip-link"
        await shoot(page, "narrow-login")
        await sign_in(page, stack)
        async with stack.api() as api:
            subs = (await api.get("/v1/webhook-subscriptions")).json()["items"]
            incidents = (await api.get("/v1/incidents")).json()["items"]
        pages = {
            "incidents": "/ui/incidents",
            "approvals": "/ui/approvals",
            "events": "/ui/events",
            "subscriptions": "/ui/subscriptions",
        }
        if subs:
            pages["subscription"] = f"/ui/subscriptions/{subs[0]['id']}"
            pages["deliveries"] = f"/ui/subscriptions/{subs[0]['id']}/deliveries"
        if incidents:
            pages["incident"] = f"/ui/incidents/{incidents[0]['id']}"
        for name, path in pages.items():
            await page.goto(path)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= NARROW["width"], f"{path} scrolls sideways ({width} px)"
            assert await unlabelled_fields(page) == [], path
            await shoot(page, f"narrow-{name}")
        assert not log.errors, str(log)


async def test_a_redis_subscription_is_created_from_the_form_and_listed(
    stack: Stack, browser: Any
) -> None:
    stream = f"cf.browser.{new_id('evt')[-8:]}"
    async with new_page(browser, stack.base_url) as (page, log):
        await sign_in(page, stack)
        await page.goto("/ui/subscriptions")
        # only the chosen type's option fields are shown
        assert not await page.get_by_label("Redis stream").is_visible()
        await page.get_by_label("Destination type").select_option("redis")
        assert await page.get_by_label("Redis stream").is_visible()
        assert not await page.get_by_label("MQTT topic").is_visible()
        await page.get_by_label("Endpoint URL").fill("redis://app:br0wser-pw@127.0.0.1:6379/0")
        await page.get_by_label("Redis stream").fill(stream)
        await page.get_by_label("Redis max length").fill("1000")
        await page.get_by_label("All events").check()
        await page.get_by_role("button", name="Create subscription").click()
        assert ((await page.locator("#secret").text_content()) or "").startswith("whsec_")

        await page.goto("/ui/subscriptions")
        row = page.locator("tr", has_text=stream)
        assert await row.count() == 1
        text = (await row.text_content()) or ""
        assert "redis://app:****@127.0.0.1:6379/0" in text
        assert await row.locator('.dest-type[data-type="redis"]').text_content() == "redis"
        assert "1000" in text
        assert "br0wser-pw" not in await page.content()
        await shoot(page, "subscriptions-redis")

        await row.get_by_role("link").first.click()
        assert await page.locator("#sub-url").text_content() == "redis://app:****@127.0.0.1:6379/0"
        assert await page.get_by_label("Redis stream").input_value() == stream
        assert "br0wser-pw" not in await page.content()
        assert not log.errors, str(log)
