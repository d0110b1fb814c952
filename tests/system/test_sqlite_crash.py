"""The embedded mode: kill -9 of the one `causeflow serve` (SQLite) while publishers post,
deliveries are in flight and a stream is open, then a restart: every accepted event is in the
log once, every delivery ends `succeeded`, the stream client resumes and misses nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.support.cluster import (
    ENV,
    SlowVaried,
    log_ids,
    msg_ids,
    publish,
    restart_now,
    subscribe,
    wait_all_succeeded,
)
from tests.support.processes import Deployment
from tests.support.receiver import ThreadedReceiver
from tests.support.traffic import Publisher, ResumingReader, finish, run_all

pytestmark = pytest.mark.process


async def test_kill9_sqlite_server_under_load(tmp_path: Path) -> None:
    with (
        ThreadedReceiver() as receiver,
        Deployment(tmp_path, env=ENV) as deployment,
    ):
        receiver.set_behavior(None, SlowVaried(0.02, 0.1))
        tenant = deployment.create_tenant("acme")
        server = deployment.add_server()
        hdr, bases = {"X-API-Key": tenant["apiKey"]}, [server.base_url]
        async with aiohttp.ClientSession() as session:
            subs = [
                await subscribe(session, bases[0], hdr, receiver.url_for(f"/hook/{i}"))
                for i in range(2)
            ]
            seed = await publish(session, bases[0], hdr, "seed")
            reader = ResumingReader(session, bases, hdr, start=0, last_event_id=seed)
            publishers = [Publisher(session, bases, hdr, name=f"p{i}") for i in range(4)]
            reading, publishing = asyncio.Event(), asyncio.Event()
            read_tasks = run_all(reading, reader)
            async with asyncio.timeout(10):
                await reader.connected.wait()
            pub_tasks = run_all(publishing, *publishers)
            await receiver.wait_for(100, timeout=20)
            await asyncio.to_thread(server.kill9)
            at_kill = set(msg_ids(receiver.requests))
            await asyncio.to_thread(restart_now, server)
            await asyncio.sleep(1.0)
            await finish(publishing, pub_tasks)
            log = await log_ids(session, bases[0], hdr)
            expected = log[log.index(seed) + 1 :]
            await reader.caught_up(expected)
            await finish(reading, read_tasks)
            wanted = log[log.index(seed) :]
            found = await wait_all_succeeded(session, bases[0], hdr, subs, len(wanted))
        received = msg_ids(receiver.requests)

    accepted = [i for p in publishers for i in p.accepted]
    assert len(accepted) > 50
    assert sum(p.failed for p in publishers) > 0  # the crash did hit the publishers
    assert set(accepted) <= set(expected), "an accepted event is missing from the log"
    assert len(set(log)) == len(log)
    assert reader.ids == expected and not reader.resets
    assert reader.cut >= 1
    all_ids = set()
    for sub in subs:
        assert {d["eventId"] for d in found[sub]} == set(wanted)
        all_ids |= {d["id"] for d in found[sub]}
    assert set(received) == all_ids
    # only deliveries already sent before the crash were sent again
    assert {m for m, n in received.items() if n > 1} <= at_kill
