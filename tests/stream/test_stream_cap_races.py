"""The stream cap under a hostile client: many opens at once never exceed the tenant's
`maxStreams`, and every way a stream can end (the client vanishing mid-stream, a client that
gives up before the head, a refused open) gives its slot back."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import pytest

from tests.stream.live import FAST, LiveService, live_service
from tests.support.inproc import make_settings
from tests.support.sse import SseHttpError, SseStream

pytestmark = pytest.mark.integration


async def _try_open(stream: SseStream) -> int:
    try:
        await stream.open()
    except SseHttpError as exc:
        return exc.status
    return 200


async def _until_no_streams(svc: LiveService) -> None:
    """Until the hub has held no stream for a second (a request the client abandoned may
    still be on its way to the hub, and leaves once it finds the client gone)."""
    quiet_since = None
    async with asyncio.timeout(15):
        while quiet_since is None or asyncio.get_running_loop().time() - quiet_since < 1:
            if svc.hub.connections():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = asyncio.get_running_loop().time()
            await asyncio.sleep(0.02)


async def test_concurrent_opens_never_exceed_the_cap_and_every_slot_comes_back(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, sse_max_streams_per_tenant=3, **FAST)
    async with live_service(settings) as svc:
        acme = await svc.tenant("acme")
        streams = [svc.stream(acme) for _ in range(20)]
        statuses = await asyncio.gather(*(_try_open(s) for s in streams))
        assert sorted(statuses) == [200] * 3 + [429] * 17
        assert len(svc.hub.connections()) == 3
        # the clients vanish without a word: their sockets close under the server
        for s in streams:
            await s.close()
        await _until_no_streams(svc)
        # clients that give up before the head, over and over
        for delay in (0, 0.001, 0.005, 0.01, 0.02):
            quitter = svc.stream(acme)
            task = asyncio.create_task(quitter.open())
            await asyncio.sleep(delay)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError, SseHttpError):
                await task
            await quitter.close()  # had it opened already, the client goes all the same
        await _until_no_streams(svc)
        again = [svc.stream(acme) for _ in range(3)]
        assert await asyncio.gather(*(_try_open(s) for s in again)) == [200] * 3
        for s in again:
            await s.close()
        await _until_no_streams(svc)
