"""A deploy: SIGTERM each process in turn (both API nodes, then both workers), each started again
before the next goes, while publishers post, stream clients read and deliveries flow. Every
process exits cleanly; every stream is ended cleanly (never cut) and its client resumes on the
other node; nothing accepted is lost and nothing is delivered twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.support.cluster import (
    SlowVaried,
    log_ids,
    msg_ids,
    pg_cluster,
    publish,
    restart_now,
    subscribe,
    wait_all_succeeded,
)
from tests.support.receiver import ThreadedReceiver
from tests.support.traffic import Publisher, ResumingReader, finish, run_all

pytestmark = pytest.mark.process


async def test_rolling_restart_loses_nothing(tmp_path: Path) -> None:
    with ThreadedReceiver() as receiver, pg_cluster(tmp_path) as cluster:
        receiver.set_behavior(None, SlowVaried(0.01, 0.05))
        hdr, bases = cluster.headers, cluster.bases
        async with aiohttp.ClientSession() as session:
            sub = await subscribe(session, bases[0], hdr, receiver.url_for("/hook"))
            seed = await publish(session, bases[0], hdr, "seed")
            readers = [
                ResumingReader(session, bases, hdr, start=i % 2, last_event_id=seed)
                for i in range(6)
            ]
            publishers = [
                Publisher(session, bases, hdr, name=f"p{i}", pause=0.02) for i in range(3)
            ]
            reading, publishing = asyncio.Event(), asyncio.Event()
            read_tasks = run_all(reading, *readers)
            async with asyncio.timeout(10):
                for reader in readers:
                    await reader.connected.wait()
            pub_tasks = run_all(publishing, *publishers)
            codes = {}
            for proc in [*cluster.servers, *cluster.workers]:
                await asyncio.sleep(0.5)
                codes[proc.log_path.name] = await asyncio.to_thread(proc.terminate, 15)
                await asyncio.to_thread(restart_now, proc)
            await asyncio.sleep(0.5)
            await finish(publishing, pub_tasks)
            log = await log_ids(session, bases[0], hdr)
            expected = log[log.index(seed) + 1 :]
            for reader in readers:
                await reader.caught_up(expected)
            await finish(reading, read_tasks)
            wanted = log[log.index(seed) :]
            found = await wait_all_succeeded(session, bases[1], hdr, [sub], len(wanted))
        received = msg_ids(receiver.requests)

    # uvicorn re-raises SIGTERM once its graceful shutdown is done; a worker exits 0
    assert codes["serve-1.log"] in (0, -15) and codes["serve-2.log"] in (0, -15), codes
    assert codes["worker-1.log"] == codes["worker-2.log"] == 0, codes
    accepted = [i for p in publishers for i in p.accepted]
    assert len(accepted) > 100
    assert set(accepted) <= set(expected), "an accepted event is missing from the log"
    for n, reader in enumerate(readers):
        assert reader.ids == expected, f"reader {n} saw {len(reader.ids)} of {len(expected)}"
        assert not reader.resets
        # each node went down once under every client: ended cleanly, never cut
        assert reader.clean_ends >= 1 and reader.cut == 0, (n, reader.clean_ends, reader.cut)
    assert {d["eventId"] for d in found[sub]} == set(wanted)
    # SIGTERM lets a worker finish and record its attempts: no delivery was sent twice
    assert set(received) == {d["id"] for d in found[sub]}
    assert set(received.values()) == {1}
