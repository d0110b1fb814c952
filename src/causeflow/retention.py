"""Retention: a periodic purge of what is older than its keeping time, in small batches.

Events, deliveries and attempts older than `CAUSEFLOW_RETENTION_DAYS`; idempotency records and
provider delivery ids older than their TTLs; stale rate-limit windows. Each batch is its own
short transaction (at most `CAUSEFLOW_RETENTION_BATCH_SIZE` rows), yielding between batches, so
the purge never holds the writer for long. A purged event id is an expired cursor: the stream
answers `reset`, polling 410.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import Table, delete, select

from causeflow.api.tables import idempotency_keys
from causeflow.context import AppContext
from causeflow.db.engine import Tx
from causeflow.event import log as event_log
from causeflow.ingest.tables import inbound_deliveries
from causeflow.ratelimit.tables import rate_counters
from causeflow.runtime import Component, Stop
from causeflow.webhook.tables import attempts, deliveries

log = logging.getLogger("causeflow.retention")
DAY_MS = 86_400_000


async def _in_batches(ctx: AppContext, purge_batch: Callable[[Tx, int], Awaitable[int]]) -> int:
    """`purge_batch(tx, batch_size)` in short transactions until a batch comes back short;
    returns how many rows went."""
    total = 0
    batch = ctx.settings.retention_batch_size
    while True:
        async with ctx.db.transaction() as tx:
            removed = await purge_batch(tx, batch)
        total += removed
        if removed < batch:
            return total
        await asyncio.sleep(0)  # let the hot path have the writer between batches


async def _purge_table(
    ctx: AppContext, table: Table, key: str, time_col: str, cutoff: int, extra: tuple = ()
) -> int:
    """Delete rows older than `cutoff` in batches; returns how many went."""
    key_col = table.c[key]

    async def purge_batch(tx: Tx, batch: int) -> int:
        doomed = (
            select(key_col).where(table.c[time_col] < cutoff, *extra).limit(batch).scalar_subquery()
        )
        return (await tx.execute(delete(table).where(key_col.in_(doomed)))).rowcount or 0

    return await _in_batches(ctx, purge_batch)


async def purge_once(ctx: AppContext) -> dict[str, int]:
    now = ctx.clock.now_ms()
    settings = ctx.settings
    cutoff = now - int(settings.retention_days * DAY_MS)
    done = {
        "attempts": await _purge_table(ctx, attempts, "id", "created_at", cutoff),
        "deliveries": await _purge_table(
            ctx, deliveries, "id", "created_at", cutoff, (deliveries.c.status != "pending",)
        ),
        "events": await _in_batches(
            ctx, lambda tx, batch: event_log.purge_older(tx, cutoff, batch)
        ),
        "inbound_deliveries": await _purge_table(
            ctx,
            inbound_deliveries,
            "delivery_id",
            "received_at",
            now - settings.delivery_id_ttl_seconds * 1000,
        ),
    }
    idem_cut = now - settings.idempotency_ttl_seconds * 1000
    async with ctx.db.transaction() as tx:
        done["idempotency_keys"] = (
            await tx.execute(
                delete(idempotency_keys).where(idempotency_keys.c.created_at < idem_cut)
            )
        ).rowcount or 0
        await tx.execute(
            delete(rate_counters).where(rate_counters.c.window_start < now - 3_600_000)
        )
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
