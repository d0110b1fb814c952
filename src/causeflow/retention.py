"""Retention: a periodic purge of what is older than its keeping time, in small batches.

Events, deliveries and attempts older than their tenant's retention (`eventRetentionDays`,
`deliveryRetentionDays`, set per tenant by a platform admin; `CAUSEFLOW_RETENTION_DAYS` for
every tenant without one), except an event that outbound delivery still needs (a pending
delivery has yet to send it, or the dispatcher has not reached it); idempotency records and
provider delivery ids older than their TTLs; stale rate-limit windows. Each batch is its own
short transaction (at most `CAUSEFLOW_RETENTION_BATCH_SIZE` rows), and the purge rests between
batches in proportion to the time each took (`CAUSEFLOW_RETENTION_PAUSE_RATIO`), so it never
holds the writer for long nor takes most of it while a large backlog goes. A purged event id
is an expired cursor: the stream answers `reset`, polling 410.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Select

from causeflow.api.idempotency import purge_records
from causeflow.context import AppContext
from causeflow.db.engine import Tx
from causeflow.event import log as event_log
from causeflow.ingest import repository as ingest_store
from causeflow.ratelimit.limiter import purge_windows
from causeflow.runtime import Component, Stop
from causeflow.tenant import plans as tenant_plans
from causeflow.webhook import repository as webhook_store

log = logging.getLogger("causeflow.retention")
DAY_MS = 86_400_000


async def _in_batches(ctx: AppContext, purge_batch: Callable[[Tx, int], Awaitable[int]]) -> int:
    """`purge_batch(tx, batch_size)` in short transactions until a batch comes back short;
    returns how many rows went. After each full batch it rests `retention_pause_ratio` times
    as long as the batch took, so that the purge leaves the hot path most of the writer and
    the CPU however long it runs; every full batch removed rows, so it always gets there."""
    total = 0
    batch = ctx.settings.retention_batch_size
    pause = ctx.settings.retention_pause_ratio
    while True:
        started = time.monotonic()
        async with ctx.db.transaction() as tx:
            removed = await purge_batch(tx, batch)
        total += removed
        if removed < batch:
            return total
        await asyncio.sleep(pause * (time.monotonic() - started))


async def _purge_deliveries(
    ctx: AppContext,
    cutoff: int,
    tenants: Select[Any],
    *,
    only: Select[Any] | None = None,
    exclude: Select[Any] | None = None,
) -> tuple[int, int]:
    """Attempts, then finished deliveries, older than `cutoff` of the tenants `tenants`
    selects (`only`/`exclude` say the same for the attempts): (attempts, deliveries) gone."""
    scope: dict[str, Any] = {"only": only, "exclude": exclude}
    attempts = await _in_batches(
        ctx, lambda tx, batch: webhook_store.purge_attempts(tx, cutoff, batch, **scope)
    )
    deliveries = await _in_batches(
        ctx,
        lambda tx, batch: webhook_store.purge_finished_deliveries(
            tx, cutoff, batch, tenants=tenants
        ),
    )
    return attempts, deliveries


async def _purge_events(
    ctx: AppContext,
    cutoff: int,
    *,
    only: Select[Any] | None = None,
    exclude: Select[Any] | None = None,
) -> int:
    return await _in_batches(
        ctx,
        lambda tx, batch: event_log.purge_older(
            tx,
            cutoff,
            batch,
            only=only,
            exclude=exclude,
            still_needed=webhook_store.events_still_needed,
        ),
    )


async def purge_tenant_data(ctx: AppContext, now: int) -> dict[str, int]:
    """Events, deliveries and attempts past their tenant's retention: every tenant without a
    retention of its own at the setting's in one sweep, then one sweep for each retention
    tenants have of their own (the tenants are named by a subquery, never listed: any number
    of them fits in a statement)."""
    with_own = tenant_plans.tenants_with_retention
    async with ctx.db.read() as conn:
        event_days = await tenant_plans.retention_days_in_use(conn, "event_retention_days")
        delivery_days = await tenant_plans.retention_days_in_use(conn, "delivery_retention_days")
    cutoff = now - int(ctx.settings.retention_days * DAY_MS)
    attempts, deliveries = await _purge_deliveries(
        ctx,
        cutoff,
        tenant_plans.tenants_without_retention("delivery_retention_days"),
        exclude=with_own("delivery_retention_days"),
    )
    for days in delivery_days:
        own = with_own("delivery_retention_days", days)
        more = await _purge_deliveries(ctx, now - days * DAY_MS, own, only=own)
        attempts, deliveries = attempts + more[0], deliveries + more[1]
    events = await _purge_events(ctx, cutoff, exclude=with_own("event_retention_days"))
    for days in event_days:
        events += await _purge_events(
            ctx, now - days * DAY_MS, only=with_own("event_retention_days", days)
        )
    return {"attempts": attempts, "deliveries": deliveries, "events": events}


async def purge_once(ctx: AppContext) -> dict[str, int]:
    now = ctx.clock.now_ms()
    settings = ctx.settings
    ids_cut = now - settings.delivery_id_ttl_seconds * 1000
    done = await purge_tenant_data(ctx, now)
    done["inbound_deliveries"] = await _in_batches(
        ctx, lambda tx, batch: ingest_store.purge_delivery_ids(tx, ids_cut, batch)
    )
    async with ctx.db.transaction() as tx:
        done["idempotency_keys"] = await purge_records(
            tx, now - settings.idempotency_ttl_seconds * 1000
        )
        await purge_windows(tx, now - 3_600_000)
    return done


def component() -> Component:
    async def start(ctx: AppContext) -> Stop:
        async def loop() -> None:
            while True:
                await asyncio.sleep(ctx.settings.retention_sweep_seconds)
                try:
                    purged = await purge_once(ctx)
                    if any(purged.values()):
                        log.info("retention purged %s", purged)
                except Exception as exc:  # the database may be away; try again next round
                    log.warning("retention sweep failed: %s", exc)

        task = asyncio.create_task(loop())

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        return stop

    return Component("retention", frozenset({"worker"}), start)
