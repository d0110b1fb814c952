"""The approval expiry job: every `approval_sweep_seconds`, overdue pending approvals expire.

Each approval expires in its own transaction (`remediation.service.expire_approval`):
approval.resolved (expired), remediation.rejected (approval_expired), and the incident back to
investigating. Any number of sweepers may run (one per worker process on PostgreSQL): the
conditional claim in `remediation.approvals.claim_approval` lets exactly one of them expire each
approval, and a person's answer racing with it is decided the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from causeflow.clock import Clock
from causeflow.context import AppContext
from causeflow.db.conn import AnyRow
from causeflow.db.engine import Database
from causeflow.remediation.approvals import overdue_approvals
from causeflow.runtime import Component, Stop

log = logging.getLogger("causeflow.approvals")

BATCH_SIZE = 100


class ApprovalSweeper:
    """Finds overdue approvals and expires those no one else has decided."""

    def __init__(self, db: Database, clock: Clock, batch_size: int = BATCH_SIZE) -> None:
        self.db = db
        self.clock = clock
        self.batch_size = batch_size

    async def sweep(self) -> int:
        """Expire every approval overdue now; returns how many this sweeper expired."""
        expired = 0
        failed: set[str] = set()
        while True:
            now_ms = self.clock.now_ms()
            async with self.db.read() as conn:
                overdue = await overdue_approvals(conn, now_ms, self.batch_size + len(failed))
            rows = [r for r in overdue if r.id not in failed]
            for row in rows:
                try:
                    expired += await self._expire(row, now_ms)
                except Exception:
                    # One bad row must not stall the rest; it is tried again next sweep.
                    log.exception("expiring approval %s failed", row.id)
                    failed.add(row.id)
            if len(rows) < self.batch_size:
                return expired

    async def _expire(self, row: AnyRow, now_ms: int) -> int:
        from causeflow.remediation.service import expire_approval

        async with self.db.transaction() as tx:
            return int(await expire_approval(tx, row, now_ms))


async def run_sweeps(sweeper: ApprovalSweeper, interval: float) -> None:
    while True:
        try:
            await sweeper.sweep()
        except Exception:
            log.exception("approval sweep failed; retrying after the interval")
        await asyncio.sleep(interval)


async def start_expiry(ctx: AppContext) -> Stop:
    sweeper = ApprovalSweeper(ctx.db, ctx.clock)
    task = asyncio.create_task(
        run_sweeps(sweeper, ctx.settings.approval_sweep_seconds), name="approval-expiry"
    )

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop


def component() -> Component:
    return Component("approval-expiry", frozenset({"worker"}), start_expiry)
