"""Streams from real `causeflow serve` processes: SIGTERM, several nodes, a browser's restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from causeflow.app import build_context
from causeflow.db.migrate import migrate
from causeflow.event.log import append_event
from causeflow.settings import Settings
from causeflow.tenant.service import provision
from causeflow_sdk.models import sample_data
from tests.stream.live import STREAM, next_event, next_events, opened, until_ended
from tests.support.browser import chromium, new_page, require_browser, screenshot
from tests.support.keys import pg_key_settings
from tests.support.pg import fresh_database, require_pg
from tests.support.processes import Deployment, ServiceProcess
from tests.support.sse import SseStream


async def _prepare(deployment: Deployment) -> dict[str, str]:
    """Migrate and provision a tenant from here: much quicker than two CLI processes."""
    settings = Settings(
        data_dir=deployment.data_dir,
        database_url=deployment.database_url or "",
        **pg_key_settings(deployment.database_url),
    )
    await migrate(settings)
    ctx = await build_context(settings)
    try:
        return (await provision(ctx, name="acme")).as_json()
    finally:
        await ctx.db.dispose()


def _start_servers(deployment: Deployment, count: int) -> list[ServiceProcess]:
    """Start several servers at once and wait until each is ready."""
    servers = [deployment.add_server(start=False) for _ in range(count)]
    for server in servers:
        server.start(wait=False)
    for server in servers:
        server.wait_ready(30)
    return servers


def _headers(tenant: dict[str, str]) -> dict[str, str]:
    return {"X-API-Key": tenant["apiKey"]}


async def _publish_http(
    session: aiohttp.ClientSession, server: ServiceProcess, tenant: dict[str, str], count: int
) -> list[str]:
    body = {"event": "incident.created", "data": sample_data("incident.created")}
    ids = []
    for _ in range(count):
        async with session.post(
            server.base_url + "/v1/events", json=body, headers=_headers(tenant)
        ) as response:
            assert response.status == 201, await response.text()
            ids.append((await response.json())["id"])
    return ids


async def _log_ids(
    session: aiohttp.ClientSession, server: ServiceProcess, tenant: dict[str, str]
) -> list[str]:
    ids: list[str] = []
    params = {"limit": "100"}
    while True:
        async with session.get(
            server.base_url + "/v1/events", params=params, headers=_headers(tenant)
        ) as response:
            page = await response.json()
        ids += [item["id"] for item in page["items"]]
        if not page["cursor"]:
            return ids
        params["cursor"] = page["cursor"]


def _stream(
    session: aiohttp.ClientSession, server: ServiceProcess, tenant: dict[str, str]
) -> SseStream:
    return SseStream(session, server.base_url + STREAM, _headers(tenant))


@pytest.mark.process
async def test_sigterm_ends_every_stream_cleanly_and_fast(tmp_path: Path) -> None:
    with Deployment(tmp_path) as deployment:
        tenant = await _prepare(deployment)
        [server] = _start_servers(deployment, 1)
        async with aiohttp.ClientSession() as session:
            streams = [_stream(session, server, tenant) for _ in range(3)]
            for stream in streams:
                await opened(await stream.open())
            [event_id] = await _publish_http(session, server, tenant, 1)
            for stream in streams:
                assert (await next_event(stream)).id == event_id
            code = await asyncio.to_thread(server.terminate, 60)
            for stream in streams:
                # A truncated chunked body would raise here: the end is a proper one.
                await until_ended(stream, timeout=5)
                assert "server shutting down; reconnect" in stream.parser.comments
                await stream.close()
    # uvicorn re-raises SIGTERM once its graceful shutdown is done
    assert code in (0, -15), server.log_tail()
    # Streams that did not end would hold uvicorn's graceful shutdown until its timeout, when
    # it cancels them and says so; the log shows the shutdown, and no such cancellation.
    log = server.log_text()
    assert "Finished server process" in log, server.log_tail()
    assert "timeout graceful shutdown exceeded" not in log, server.log_tail()


@pytest.mark.process
async def test_a_client_on_one_node_receives_what_another_node_publishes(tmp_path: Path) -> None:
    require_pg()
    with fresh_database() as url, Deployment(tmp_path, url) as deployment:
        tenant = await _prepare(deployment)
        node_a, node_b = _start_servers(deployment, 2)
        async with aiohttp.ClientSession() as session:
            async with (
                _stream(session, node_a, tenant) as on_a,
                _stream(session, node_b, tenant) as on_b,
            ):
                await opened(on_a)
                await opened(on_b)
                via_b, via_a = await asyncio.gather(
                    _publish_http(session, node_b, tenant, 40),
                    _publish_http(session, node_a, tenant, 20),
                )
                got_a = await next_events(on_a, 60, timeout=15)
                got_b = await next_events(on_b, 60, timeout=15)
            log = await _log_ids(session, node_b, tenant)
    published = set(via_a) | set(via_b)
    in_log_order = [i for i in log if i in published]
    assert len(in_log_order) == 60
    assert [e.id for e in got_a] == in_log_order  # every event, in log order, on node A
    assert [e.id for e in got_b] == in_log_order


async def _publish_offline(data_dir: Path, tenant_id: str, count: int) -> list[str]:
    """Append to the SQLite log while no server runs (what another writer would have done)."""
    ctx = await build_context(Settings(data_dir=data_dir, database_url=""))
    try:
        ids = []
        async with ctx.db.transaction() as tx:
            for _ in range(count):
                stored = await append_event(
                    tx,
                    tenant_id=tenant_id,
                    event_type="incident.created",
                    data=sample_data("incident.created"),
                    now_ms=ctx.clock.now_ms(),
                )
                ids.append(stored.id)
        return ids
    finally:
        await ctx.db.dispose()


PAGE_SCRIPT = """
ticket => {
  window.received = [];
  window.opens = 0;
  window.errors = 0;
  const source = new EventSource("/v1/notifications/stream?token=" + encodeURIComponent(ticket));
  source.onopen = () => { window.opens += 1; };
  source.onerror = () => { window.errors += 1; };
  source.addEventListener("incident.created", e => {
    window.received.push(e.lastEventId);
    const line = document.createElement("div");
    line.textContent = e.lastEventId + " " + JSON.parse(e.data).event;
    document.body.appendChild(line);
  });
  window.source = source;
}
"""


async def _wait_received(page: Any, count: int, timeout: float = 15) -> list[str]:
    await page.wait_for_function(
        f"window.received && window.received.length >= {count}", timeout=timeout * 1000
    )
    return list(await page.evaluate("window.received"))


@pytest.mark.browser
async def test_a_browser_eventsource_survives_a_server_restart(tmp_path: Path) -> None:
    require_browser()
    env = {"CAUSEFLOW_SSE_RETRY_MS": "400", "CAUSEFLOW_SSE_PING_SECONDS": "5"}
    with Deployment(tmp_path, env=env) as deployment:
        tenant = await _prepare(deployment)
        [server] = _start_servers(deployment, 1)
        async with aiohttp.ClientSession() as session, chromium() as browser:
            async with session.post(
                server.base_url + "/v1/notifications/stream-tickets", headers=_headers(tenant)
            ) as response:
                ticket = (await response.json())["ticket"]
            async with new_page(browser, server.base_url) as (page, log):
                await page.goto("/healthz")  # same origin as the stream
                await page.evaluate(PAGE_SCRIPT, ticket)
                await page.wait_for_function("window.opens >= 1", timeout=10000)
                before = await _publish_http(session, server, tenant, 3)
                assert await _wait_received(page, 3) == before, str(log)
                await asyncio.to_thread(server.terminate)
                # Committed while no server runs: only a resume from Last-Event-ID finds them.
                offline = await _publish_offline(deployment.data_dir, tenant["tenantId"], 3)
                await asyncio.to_thread(server.start)
                after = await _publish_http(session, server, tenant, 3)
                received = await _wait_received(page, 9)
                await screenshot(page, "stream-eventsource-restart")
                opens = await page.evaluate("window.opens")
    assert received == before + offline + after, str(log)
    assert opens >= 2  # it did reconnect, by itself, with the same ticket
