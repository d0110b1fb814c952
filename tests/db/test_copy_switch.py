"""The switch from SQLite to PostgreSQL with `migrate-store`'s copy, end to end: a SQLite
store filled through the real service (tenant, API keys, an ordered and a plain subscription,
an incident from an inbound alert, published events with an idempotency key, deliveries
including one mid-retry, the dispatcher's cursors and sequences), copied and verified, then
the service started on PostgreSQL with the same key file. Clients see nothing of the move:
the same API key works, the log lists the same ids in the same order, an SSE client resumes
from its Last-Event-ID with exactly the events after it, a new event is positioned after the
old ones, and the delivery that was waiting for its retry is delivered by a worker on
PostgreSQL, with its sequence number and a signature the receiver verifies."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from causeflow.clock import Clock
from causeflow.db.copy import copy_store, verify_copy
from causeflow.schema import metadata
from causeflow.settings import Settings
from causeflow.webhook.tables import deliveries
from causeflow_sdk.models import sample_data
from causeflow_sdk.signatures import verify_causeflow
from tests.stream.live import FAST, LiveService, live_service, next_events, opened
from tests.support.inproc import Tenant, make_settings
from tests.support.pg import fresh_database_async, require_pg
from tests.support.receiver import Fail, Ok, ReceivedRequest, Receiver

pytestmark = pytest.mark.integration

SUBS = "/v1/webhook-subscriptions"
RETRY_AFTER_SECONDS = 300
SETTINGS: dict[str, Any] = {
    **FAST,
    "webhook_poll_seconds": 0.1,
    "webhook_timeout_seconds": 2.0,
    "webhook_retry_schedule": f"{RETRY_AFTER_SECONDS}s",
}


class Later(Clock):
    """The service on PostgreSQL starts later than the SQLite one stopped: the waiting
    delivery's retry is due by then."""

    def __init__(self, seconds: float) -> None:
        self.offset = seconds

    def now_ms(self) -> int:
        return super().now_ms() + int(self.offset * 1000)

    def now(self) -> float:
        return super().now() + self.offset


async def call(
    live: LiveService, method: str, path: str, headers: dict[str, str], **kw: Any
) -> tuple[int, Any]:
    async with live.session.request(method, live.base_url + path, headers=headers, **kw) as r:
        return r.status, await r.json()


async def log_ids(live: LiveService, tenant: Tenant) -> list[str]:
    """Every event id of GET /v1/events, page by page, in the order served."""
    ids: list[str] = []
    params = {"limit": "100"}
    while True:
        status, page = await call(live, "GET", "/v1/events", tenant.key_headers, params=params)
        assert status == 200, page
        ids += [item["id"] for item in page["items"]]
        if not page["cursor"]:
            return ids
        params["cursor"] = page["cursor"]


async def publish(live: LiveService, tenant: Tenant, title: str, **headers: str) -> str:
    body = {"event": "incident.created", "data": sample_data("incident.created", title=title)}
    status, event = await call(
        live, "POST", "/v1/events", {**tenant.key_headers, **headers}, json=body
    )
    assert status == 201, event
    return str(event["id"])


async def delivery_of(live: LiveService, sub_id: str, event_id: str) -> Any:
    stmt = select(deliveries).where(
        deliveries.c.subscription_id == sub_id, deliveries.c.event_id == event_id
    )
    async with live.ctx.db.read() as conn:
        return (await conn.execute(stmt)).first()


async def until(check: Any, timeout: float = 20) -> Any:
    async with asyncio.timeout(timeout):
        while not (found := await check()):
            await asyncio.sleep(0.05)
        return found


async def fill(live: LiveService, receiver: Receiver) -> dict[str, Any]:
    """Every kind of row, through the service; ends with one ordered delivery mid-retry."""
    tenant = await live.tenant("acme")
    admin = tenant.admin_headers
    status, ordered = await call(
        live,
        "POST",
        SUBS,
        admin,
        json={"url": receiver.url_for("/ordered"), "events": ["*"], "ordering": "ordered"},
    )
    assert status == 201, ordered
    status, plain = await call(
        live, "POST", SUBS, admin, json={"url": receiver.url_for("/plain"), "events": ["*"]}
    )
    assert status == 201, plain
    alert = {"externalId": "disk-full", "title": "Disk full", "status": "firing"}
    async with live.session.post(
        f"{live.base_url}/v1/webhooks/{tenant.id}/custom",
        json=alert,
        headers={"X-API-Key": tenant.ingest_key},
    ) as resp:
        assert resp.status in (200, 201, 202), await resp.text()
    published = [await publish(live, tenant, "first", **{"Idempotency-Key": "k-1"})]
    published.append(await publish(live, tenant, "second"))
    last_ok = await until(lambda: delivery_of(live, ordered["id"], published[-1]))
    await until(lambda: _succeeded(live, ordered["id"], published[-1]))
    receiver.set_behavior("/ordered", Fail(status=503))
    waiting_event = await publish(live, tenant, "third")
    waiting = await until(lambda: _failed_once(live, ordered["id"], waiting_event))
    return {
        "tenant": tenant,
        "ordered": ordered,
        "waiting": waiting,
        "waiting_event": waiting_event,
        "last_ok_sequence": last_ok.sequence,
    }


async def _succeeded(live: LiveService, sub_id: str, event_id: str) -> bool:
    row = await delivery_of(live, sub_id, event_id)
    return row is not None and row.status == "succeeded"


async def _failed_once(live: LiveService, sub_id: str, event_id: str) -> Any:
    row = await delivery_of(live, sub_id, event_id)
    return row if row is not None and row.attempts == 1 else None


async def sse_prefix(live: LiveService, tenant: Tenant, first: str, count: int) -> list[str]:
    """What an SSE client resuming after `first` had received of the log: `count` events."""
    async with live.stream(tenant, last_event_id=first) as stream:
        await opened(stream)
        return [e.id or "" for e in await next_events(stream, count)]


def pg_settings(tmp_path: Path, url: str) -> Settings:
    """The service on PostgreSQL with the SQLite service's own key file."""
    keys = str(tmp_path / "data" / "keys.json")
    return make_settings(
        tmp_path, url, key_file=keys, jwt_secret="", secret_key="", run_workers=True, **SETTINGS
    )


def assert_signed(request: ReceivedRequest, secret: str) -> None:
    assert verify_causeflow(secret, request.body, request.headers["X-CauseFlow-Signature"])


async def test_the_service_moves_to_postgresql_with_nothing_lost(tmp_path: Path):
    require_pg()
    sqlite = make_settings(tmp_path, **SETTINGS)
    async with Receiver() as receiver, fresh_database_async("cf_migstore") as url:
        async with live_service(sqlite) as old:
            filled = await fill(old, receiver)
            tenant: Tenant = filled["tenant"]
            before = await log_ids(old, tenant)
            seen = await sse_prefix(old, tenant, before[0], len(before) - 3)
        assert seen == before[1:-2]
        waiting = filled["waiting"]
        assert waiting.status == "pending" and waiting.next_attempt_at > Clock().now_ms()
        assert waiting.sequence == filled["last_ok_sequence"] + 1

        target = pg_settings(tmp_path, url)
        await copy_store(sqlite, target, metadata, batch_rows=3)
        assert all(check.ok for check in await verify_copy(sqlite, target, metadata))

        receiver.set_behavior("/ordered", Ok())
        receiver.clear()
        async with live_service(target, Later(RETRY_AFTER_SECONDS + 60)) as new:
            assert await log_ids(new, tenant) == before  # the same API key, ids and order
            async with new.stream(tenant, last_event_id=seen[-1]) as stream:
                await opened(stream)
                resumed = [e.id for e in await next_events(stream, 2)]
                assert resumed == before[-2:]
                fresh = await publish(new, tenant, "fourth")
                assert [e.id for e in await next_events(stream, 1)] == [fresh]
            assert await log_ids(new, tenant) == [*before, fresh]
            await _check_positions(new, tenant, fresh)
            await _check_deliveries(new, receiver, filled, fresh)


async def _check_positions(live: LiveService, tenant: Tenant, fresh: str) -> None:
    from causeflow.event.log import read_after

    async with live.ctx.db.read() as conn:
        rows = await read_after(conn, tenant.id, 0, limit=1000)
    positions = [r.position for r in rows]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert rows[-1].id == fresh and rows[-1].position == positions[-2] + 1


async def _check_deliveries(
    live: LiveService, receiver: Receiver, filled: dict[str, Any], fresh: str
) -> None:
    """The waiting delivery, then the new event's, to the ordered receiver, in sequence."""
    waiting = filled["waiting"]
    got = await receiver.wait_for(2, path="/ordered", timeout=30)
    assert [r.headers["X-CauseFlow-Delivery"] for r in got[:1]] == [waiting.id]
    sequences = [int(r.headers["X-CauseFlow-Sequence"]) for r in got[:2]]
    assert sequences == [waiting.sequence, waiting.sequence + 1]
    assert got[1].json()["id"] == fresh
    for request in got[:2]:
        assert_signed(request, filled["ordered"]["secret"])
    row = await until(lambda: _succeeded(live, filled["ordered"]["id"], filled["waiting_event"]))
    assert row
    row = await delivery_of(live, filled["ordered"]["id"], filled["waiting_event"])
    assert row.attempts == 2 and row.status == "succeeded"
