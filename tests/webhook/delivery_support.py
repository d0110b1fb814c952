"""Steps shared by the delivery worker tests: a bare context (no API, no dispatcher), rows
written straight to the tables, engines started and stopped, and waits on delivery states."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook

from causeflow import ids
from causeflow.app import build_context
from causeflow.clock import Clock
from causeflow.context import AppContext
from causeflow.db.migrate import migrate
from causeflow.event.log import StoredEvent, append_event
from causeflow.event.tables import events
from causeflow.jsonutil import dumps_str
from causeflow.webhook.tables import attempts, deliveries, subscriptions
from causeflow.webhook.worker import DeliveryEngine
from causeflow_sdk.models import sample_data
from tests.support.inproc import make_settings
from tests.support.receiver import ReceivedRequest

FAST = {
    "webhook_retry_schedule": "0.2s,0.2s,0.4s",
    "webhook_poll_seconds": 0.1,
    "webhook_timeout_seconds": 3.0,
}
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TENANT = "ten_01JD0000000000000000000000"


@asynccontextmanager
async def bare_context(
    tmp_path: Path, database_url: str = "", clock: Clock | None = None, **overrides: Any
) -> AsyncIterator[AppContext]:
    """A migrated database and an AppContext with nothing running (no app, no dispatcher)."""
    settings = make_settings(tmp_path, database_url, **{**FAST, **overrides})
    await migrate(settings)
    ctx = await build_context(settings, clock)
    try:
        yield ctx
    finally:
        await ctx.db.dispose()


@asynccontextmanager
async def running_engine(ctx: AppContext, **kwargs: Any) -> AsyncIterator[DeliveryEngine]:
    engine = DeliveryEngine(ctx, **{"grace_seconds": 0.5, **kwargs})
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


async def add_subscription(
    ctx: AppContext,
    url: str,
    *,
    tenant_id: str = TENANT,
    secret: str = SECRET,
    previous_secret: str | None = None,
    enabled: bool = True,
    rate: int | None = None,
    headers: dict[str, str] | None = None,
    first_failure_at: int | None = None,
) -> str:
    now = ctx.clock.now_ms()
    sub_id = ids.new_id("sub", now)
    box = ctx.keys.box
    async with ctx.db.transaction() as tx:
        await tx.execute(
            subscriptions.insert().values(
                id=sub_id,
                tenant_id=tenant_id,
                url=url,
                description=None,
                # a type no test publishes: nothing but the test creates its deliveries
                events=dumps_str(["tenant.updated"]),
                filter=None,
                headers_enc=box.seal(dumps_str(headers)) if headers else None,
                secret_enc=box.seal(secret),
                previous_secret_enc=box.seal(previous_secret) if previous_secret else None,
                previous_secret_until=now + 3_600_000 if previous_secret else None,
                enabled=enabled,
                disabled_reason=None if enabled else "by_hand",
                first_failure_at=first_failure_at,
                rate_limit_per_second=rate,
                created_at=now,
                updated_at=now,
                from_position=0,
            )
        )
    return sub_id


async def add_event(
    ctx: AppContext, event_type: str = "incident.created", tenant_id: str = TENANT
) -> StoredEvent:
    async with ctx.db.transaction() as tx:
        return await append_event(
            tx,
            tenant_id=tenant_id,
            event_type=event_type,
            data=sample_data(event_type),
            now_ms=ctx.clock.now_ms(),
        )


async def add_deliveries(
    ctx: AppContext,
    sub_id: str,
    event: StoredEvent | None,
    count: int = 1,
    *,
    tenant_id: str = TENANT,
    payload: str | None = None,
    manual: bool = False,
    attempts_made: int = 0,
) -> list[str]:
    """Pending deliveries due now, as the dispatcher (or the retry endpoint) writes them."""
    now = ctx.clock.now_ms()
    rows = []
    for _ in range(count):
        rows.append(
            {
                "id": ids.new_id("msg", now),
                "tenant_id": tenant_id,
                "subscription_id": sub_id,
                "event_id": event.id if event else ids.new_id("evt", now),
                "event_type": event.type if event else "incident.created",
                "status": "pending",
                "attempts": attempts_made,
                "next_attempt_at": now,
                "manual": manual,
                "payload": payload,
                "created_at": now,
                "updated_at": now,
            }
        )
    async with ctx.db.transaction() as tx:
        await tx.execute(deliveries.insert(), rows)
    wake = ctx.delivery_wakeup
    if wake is not None:
        wake()
    return [r["id"] for r in rows]


async def delivery(ctx: AppContext, msg_id: str) -> Any:
    async with ctx.db.read() as conn:
        return (await conn.execute(select(deliveries).where(deliveries.c.id == msg_id))).one()


async def subscription(ctx: AppContext, sub_id: str) -> Any:
    async with ctx.db.read() as conn:
        return (await conn.execute(select(subscriptions).where(subscriptions.c.id == sub_id))).one()


async def attempts_of(ctx: AppContext, msg_id: str) -> list[Any]:
    async with ctx.db.read() as conn:
        stmt = (
            select(attempts)
            .where(attempts.c.delivery_id == msg_id)
            .order_by(attempts.c.created_at, attempts.c.id)
        )
        return list((await conn.execute(stmt)).all())


async def log_events(ctx: AppContext, event_type: str, tenant_id: str = TENANT) -> list[Any]:
    async with ctx.db.read() as conn:
        stmt = (
            select(events)
            .where(events.c.tenant_id == tenant_id, events.c.type == event_type)
            .order_by(events.c.position)
        )
        return list((await conn.execute(stmt)).all())


async def set_subscription(ctx: AppContext, sub_id: str, **values: Any) -> None:
    async with ctx.db.transaction() as tx:
        await tx.execute(update(subscriptions).where(subscriptions.c.id == sub_id).values(**values))
    cache = ctx.subscription_cache
    if cache is not None:
        cache.invalidate(subscription_id=sub_id, tenant_id=TENANT)


async def wait_until_settled(
    ctx: AppContext, msg_ids: list[str], timeout: float = 10.0, done: frozenset[str] | None = None
) -> list[Any]:
    """Poll until every delivery has left `pending` (or is in `done`); return their rows."""
    finished = done or frozenset({"succeeded", "failed", "cancelled"})
    deadline = time.monotonic() + timeout
    while True:
        async with ctx.db.read() as conn:
            rows = (
                await conn.execute(select(deliveries).where(deliveries.c.id.in_(msg_ids)))
            ).all()
        if len(rows) == len(msg_ids) and all(r.status in finished for r in rows):
            by_id = {r.id: r for r in rows}
            return [by_id[m] for m in msg_ids]
        if time.monotonic() > deadline:
            states = sorted({(r.status, r.attempts) for r in rows})
            raise TimeoutError(f"deliveries not settled within {timeout} s: {states}")
        await asyncio.sleep(0.03)


def hex_verify(raw_body: str, signature_header: str, secret: str) -> bool:
    """The hex verifier of docs/reference.md §5.5: HMAC-SHA256 of the raw body."""
    expected = (
        "sha256="
        + hmac.new(secret.encode("utf-8"), raw_body.encode("utf-8"), hashlib.sha256).hexdigest()
    )
    given, wanted = signature_header.encode("utf-8"), expected.encode("utf-8")
    return len(given) == len(wanted) and hmac.compare_digest(given, wanted)


def verify_standard(request: ReceivedRequest, secret: str) -> Any:
    """Verify with the `standardwebhooks` library as a receiver would; returns the payload."""
    library = Webhook(secret if secret.startswith("whsec_") else secret.encode("utf-8"))
    return library.verify(request.body.decode(), dict(request.headers))


async def wait_attempts(ctx: AppContext, msg_id: str, count: int = 1, timeout: float = 10) -> Any:
    """Poll until the delivery has recorded `count` attempts; return its row."""
    deadline = time.monotonic() + timeout
    while (row := await delivery(ctx, msg_id)).attempts < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{msg_id}: {row.attempts} attempts after {timeout} s")
        await asyncio.sleep(0.03)
    return row
