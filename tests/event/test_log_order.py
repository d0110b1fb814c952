"""The log's commit order (docs/reference.md §3.5): with concurrent writers, a reader polling
"after position N" never misses an event — the failure a plain auto-increment has."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from causeflow.event.log import append_event, read_after
from tests.support.inproc import make_settings, running_service

pytestmark = pytest.mark.integration


async def test_poller_never_misses_with_concurrent_writers(tmp_path: Path, database_url: str):
    settings = make_settings(tmp_path, database_url, db_pool_size=12)
    async with running_service(settings) as svc:
        tenant = await svc.tenant()
        db = svc.ctx.db
        writers, per_writer = 8, 40
        written: set[str] = set()
        done = asyncio.Event()

        async def writer(w: int) -> None:
            for i in range(per_writer):
                async with db.transaction() as tx:
                    event = await append_event(
                        tx,
                        tenant_id=tenant.id,
                        event_type="incident.created",
                        data={"n": f"{w}-{i}"},
                        now_ms=svc.ctx.clock.now_ms(),
                    )
                    # hold the transaction open a little, so commits interleave
                    await asyncio.sleep(random.random() * 0.004)
                written.add(event.id)

        seen: list[str] = []
        positions: list[int] = []

        async def poller() -> None:
            cursor = 0
            while True:
                finished = done.is_set()
                async with db.read() as conn:
                    rows = await read_after(conn, tenant.id, cursor, limit=50)
                for row in rows:
                    seen.append(row.id)
                    positions.append(row.position)
                    cursor = row.position
                if finished and not rows:
                    return
                await asyncio.sleep(0.001)

        poll = asyncio.create_task(poller())
        await asyncio.gather(*(writer(w) for w in range(writers)))
        done.set()
        await poll
        # everything written was seen exactly once, in strictly increasing positions
        assert written <= set(seen)
        assert len(seen) == len(set(seen))
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        assert positions == list(range(positions[0], positions[0] + len(positions)))
