"""The windows that are settings: the longest recover/replay window
(`CAUSEFLOW_WEBHOOK_RECOVER_WINDOW_SECONDS`) and how long a receiver's vetted DNS answer is
reused (`CAUSEFLOW_WEBHOOK_DNS_CACHE_SECONDS`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from causeflow.clock import ms_to_rfc3339
from causeflow.webhook.engine import build_sender
from tests.support.inproc import Service, make_settings, running_service
from tests.support.webhook import SUBS, append, create_sub, error_paths
from tests.webhook.test_sender import Answers, ConnectionCounter, Receiver, closing, receiver

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000


@pytest.fixture
async def hour_window(tmp_path: Path, database_url: str) -> AsyncIterator[Service]:
    settings = make_settings(tmp_path, database_url, webhook_recover_window_seconds=3600)
    async with running_service(settings) as svc:
        yield svc


@pytest.mark.parametrize("operation", ["recover", "replay"])
async def test_a_window_over_the_configured_maximum_is_422(hour_window: Service, operation: str):
    service = hour_window
    tenant = await service.tenant("acme")
    sub = await create_sub(service, tenant)
    await append(service, tenant)
    url = f"{SUBS}/{sub['id']}/{operation}"
    now = service.ctx.clock.now_ms()
    over = await service.client.post(
        url,
        headers=tenant.admin_headers,
        json={"since": ms_to_rfc3339(now - HOUR_MS - 1), "until": ms_to_rfc3339(now)},
    )
    assert error_paths(over) == ["until"]
    assert "at most 1 hour" in over.json()["message"]
    within = await service.client.post(
        url,
        headers=tenant.admin_headers,
        json={"since": ms_to_rfc3339(now - HOUR_MS), "until": ms_to_rfc3339(now)},
    )
    assert within.status_code == 202, within.text


async def test_the_default_window_is_fourteen_days(sqlite_service: Service):
    service = sqlite_service
    tenant = await service.tenant("acme")
    sub = await create_sub(service, tenant)
    now = service.ctx.clock.now_ms()
    for days, status in ((14, 202), (15, 422)):
        resp = await service.client.post(
            f"{SUBS}/{sub['id']}/recover",
            headers=tenant.admin_headers,
            json={
                "since": ms_to_rfc3339(now - days * 24 * HOUR_MS),
                "until": ms_to_rfc3339(now),
            },
        )
        assert resp.status_code == status, resp.text
    assert "at most 14 days" in resp.json()["message"]


@pytest.fixture
async def servers() -> AsyncIterator[list[Receiver | ConnectionCounter]]:
    started: list[Receiver | ConnectionCounter] = []
    yield started
    for server in started:
        await server.stop()


@pytest.mark.parametrize(("seconds", "lookups"), [(60, 1), (0, 3)])
async def test_the_vetted_answer_lifetime_is_a_setting(
    tmp_path: Path, servers: list[Receiver | ConnectionCounter], seconds: int, lookups: int
):
    got = await receiver(servers, closing())
    answers = Answers(["127.0.0.1"])
    settings = make_settings(
        tmp_path, webhook_allow_cidrs="127.0.0.1/32", webhook_dns_cache_seconds=seconds
    )
    sender = build_sender(settings)
    sender._resolver_fn = answers  # the test's DNS instead of the system's
    async with sender:
        url = f"http://receiver.example.test:{got.port}/"
        results = [await sender.send(url, b"{}", {}) for _ in range(3)]
    assert all(r.ok for r in results), results
    # three fresh connections (the receiver closes each): one lookup within the window, or
    # one vetted lookup per connection without it
    assert answers.asked == ["receiver.example.test"] * lookups
