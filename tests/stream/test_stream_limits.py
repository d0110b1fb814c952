"""A tenant's own stream cap (`maxStreams`, set by a platform admin): one stream more is refused
with 429 before it starts, a freed slot admits a new one, and other tenants keep the default."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.stream.live import FAST, LiveService, live_service
from tests.support.inproc import make_settings
from tests.support.sse import SseHttpError

pytestmark = pytest.mark.integration


async def _set_max_streams(svc: LiveService, tenant_id: str, value: int | None) -> None:
    token = svc.ctx.tokens.mint_platform_admin(now=time.time(), ttl=60)
    async with svc.session.put(
        f"{svc.base_url}/v1/tenants/{tenant_id}/limits",
        headers={"Authorization": f"Bearer {token}"},
        json={"maxStreams": value},
    ) as resp:
        assert resp.status == 200, await resp.text()


async def test_a_tenants_own_stream_cap(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, sse_max_streams_per_tenant=3, **FAST)
    async with live_service(settings) as svc:
        acme, globex = await svc.tenant("acme"), await svc.tenant("globex")
        await _set_max_streams(svc, acme.id, 1)
        async with svc.stream(acme) as one:
            await one.next(timeout=5)
            with pytest.raises(SseHttpError) as caught:
                async with svc.stream(acme):
                    pass
            assert caught.value.status == 429
            assert '"error":"too_many_streams"' in caught.value.body
            assert '"limit":1' in caught.value.body
            # globex has the default of 3
            async with svc.stream(globex) as g1, svc.stream(globex) as g2, svc.stream(globex) as g3:
                for s in (g1, g2, g3):
                    await s.next(timeout=5)
        # the slot is free once the client has gone
        async with asyncio.timeout(5):
            while svc.hub.connections():
                await asyncio.sleep(0.02)
        async with svc.stream(acme) as again:
            await again.next(timeout=5)
            await _set_max_streams(svc, acme.id, None)  # back to the default: 3
            async with svc.stream(acme) as second:
                await second.next(timeout=5)
