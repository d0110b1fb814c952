"""Per-tenant request budgets: fixed one-minute windows, shared across processes on PostgreSQL.

Each process counts locally and, every `sync_seconds`, adds its unsynced count to the shared
`rate_counters` row and reads the total back. Between syncs a process only knows its own
recent requests, so with several processes a small overshoot is possible (docs/reference.md §8.4
allows it); a single process is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from sqlalchemy import delete

from causeflow.db.engine import Database, Tx
from causeflow.ratelimit.tables import rate_counters

WINDOW_MS = 60_000
log = logging.getLogger("causeflow.ratelimit")


@dataclass(slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # unix seconds when the window ends

    def retry_after(self, now_ms: int) -> int:
        """Seconds until the window ends (at least 1)."""
        return max(1, self.reset - now_ms // 1000)

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
        ]


@dataclass(slots=True)
class _Window:
    shared: int = 0  # total seen in the database at the last sync (includes our synced hits)
    unsynced: int = 0


class RateLimiter:
    def __init__(self, db: Database | None = None, sync_seconds: float = 0.5) -> None:
        self.db = db if db is not None and db.dialect.multi_process else None
        self.sync_seconds = sync_seconds
        self._windows: dict[tuple[str, int], _Window] = {}
        self._task: asyncio.Task[None] | None = None

    def hit(self, bucket: str, limit: int, now_ms: int, cost: int = 1) -> Decision:
        """Spend `cost` units of `bucket`'s budget of `limit` per window, all or none."""
        start = now_ms - now_ms % WINDOW_MS
        reset = (start + WINDOW_MS) // 1000
        if limit <= 0:
            return Decision(True, 0, 0, reset)
        key = (bucket, start)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window()
            self._forget_before(start)
        used = window.shared + window.unsynced
        if used + cost > limit:
            return Decision(False, limit, max(0, limit - used), reset)
        window.unsynced += cost
        return Decision(True, limit, max(0, limit - used - cost), reset)

    def _forget_before(self, start: int) -> None:
        if len(self._windows) > 1:
            for key in [k for k in self._windows if k[1] < start and not self._windows[k].unsynced]:
                del self._windows[key]

    async def start(self) -> None:
        if self.db is not None:
            self._task = asyncio.create_task(self._sync_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sync_seconds)
            try:
                await self.sync()
            except Exception as exc:  # the database may be away; counting goes on locally
                log.warning("rate-limit sync failed: %s", exc)

    async def sync(self) -> None:
        assert self.db is not None
        pending = [(k, w, w.unsynced) for k, w in self._windows.items() if w.unsynced]
        if not pending:
            return
        async with self.db.transaction() as tx:
            for (bucket, start), window, added in pending:
                stmt = (
                    self.db.dialect.insert(rate_counters)
                    .values(bucket=bucket, window_start=start, count=added)
                    .on_conflict_do_update(
                        index_elements=["bucket", "window_start"],
                        set_={"count": rate_counters.c.count + added},
                    )
                    .returning(rate_counters.c.count)
                )
                total = int((await tx.execute(stmt)).scalar_one())
                window.unsynced -= added
                window.shared = total
            oldest = min(start for (_, start), _, _ in pending) - 2 * WINDOW_MS
            await tx.execute(delete(rate_counters).where(rate_counters.c.window_start < oldest))


async def purge_windows(tx: Tx, before_ms: int) -> None:
    """Forget the shared counts of windows that started before `before_ms` (the retention job)."""
    await tx.execute(delete(rate_counters).where(rate_counters.c.window_start < before_ms))
