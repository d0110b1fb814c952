"""The log's read functions for outbound readers: pages after a position, time windows,
envelopes by id and the retention purge."""

from __future__ import annotations

from pathlib import Path

import pytest

from causeflow.event.log import (
    append_event,
    envelopes_of,
    page_after,
    page_in_window,
    purge_older,
)
from tests.support.inproc import make_settings, running_service

pytestmark = pytest.mark.integration


async def test_pages_windows_envelopes_and_purge(tmp_path: Path, database_url: str):
    settings = make_settings(tmp_path, database_url)
    async with running_service(settings) as svc:
        tenant = await svc.tenant()
        db = svc.ctx.db
        stored = []
        async with db.transaction() as tx:
            for n in range(5):
                stored.append(
                    await append_event(
                        tx,
                        tenant_id=tenant.id,
                        event_type="incident.created",
                        data={"n": n},
                        now_ms=1_000 * (n + 1),
                    )
                )
        first = stored[0].position
        async with db.read() as conn:
            page = list(await page_after(conn, tenant.id, first, first + 3, 2))
            window = await page_in_window(conn, tenant.id, 2_000, 4_000, first + 1, 10)
            envelopes = await envelopes_of(conn, [stored[1].id, "evt_missing"])
        assert [r.id for r in page] == [stored[1].id, stored[2].id]
        assert [r.id for r in window] == [stored[2].id, stored[3].id]
        assert envelopes == {stored[1].id: stored[1].envelope}
        async with db.transaction() as tx:
            assert await purge_older(tx, 3_000, 10) == 2
        async with db.read() as conn:
            left = list(await page_after(conn, tenant.id, first - 1, stored[-1].position, 10))
        assert [r.id for r in left] == [e.id for e in stored[2:]]
