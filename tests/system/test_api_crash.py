"""kill -9 of an API process while publishers post to both nodes and stream clients hang on it:
the clients resume on the other node with `Last-Event-ID` and miss nothing (every event of the
log exactly once, in log order), every accepted event is in the log, and every event is
delivered to the subscription."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.support.cluster import (
    log_ids,
    msg_ids,
    pg_cluster,
    publish,
    subscribe,
    wait_all_succeeded,
)
from tests.support.receiver import ThreadedReceiver
from tests.support.traffic import Publisher, ResumingReader, finish, run_all

pytestmark = pytest.mark.process


async def test_kill9_api_node_under_publishers_and_streams(tmp_path: Path) -> None:
    with ThreadedReceiver() as receiver, pg_cluster(tmp_path) as cluster:
        hdr, bases = cluster.headers, cluster.bases
        async with aiohttp.ClientSession() as session:
            sub = await subscribe(session, bases[0], hdr, receiver.url_for("/hook"))
            seed = await publish(session, bases[0], hdr, "seed")
            # six clients on node 0 (the victim), two on node 1
            readers = [
                ResumingReader(session, bases, hdr, start=0 if i < 6 else 1, last_event_id=seed)
                for i in range(8)
            ]
            publishers = [Publisher(session, bases, hdr, name=f"p{i}") for i in range(4)]
            reading, publishing = asyncio.Event(), asyncio.Event()
            read_tasks = run_all(reading, *readers)
            async with asyncio.timeout(10):
                for reader in readers:
                    await reader.connected.wait()
            pub_tasks = run_all(publishing, *publishers)
            await asyncio.sleep(1.5)
            await asyncio.to_thread(cluster.servers[0].kill9)
            await asyncio.sleep(1.5)  # the survivor takes everything meanwhile
            await asyncio.to_thread(cluster.servers[0].start)
            await asyncio.sleep(1.0)
            await finish(publishing, pub_tasks)
            log = await log_ids(session, bases[1], hdr)
            expected = log[log.index(seed) + 1 :]
            for reader in readers:
                await reader.caught_up(expected)
            await finish(reading, read_tasks)
            # the seed and everything after it (before it: tenant.created, not subscribed)
            wanted = log[log.index(seed) :]
            found = await wait_all_succeeded(session, bases[1], hdr, [sub], len(wanted))
        received = msg_ids(receiver.requests)

    accepted = [i for p in publishers for i in p.accepted]
    assert len(accepted) > 50
    assert set(accepted) <= set(expected), "an accepted event is missing from the log"
    assert sum(p.failed for p in publishers) > 0  # the crash did hit the publishers
    assert len(set(log)) == len(log)
    for n, reader in enumerate(readers):
        assert reader.ids == expected, f"reader {n} saw {len(reader.ids)} of {len(expected)}"
        assert not reader.resets
    victims = readers[:6]
    assert all(r.cut >= 1 for r in victims), [r.cut for r in victims]
    assert all(r.connected_to[1] == bases[1] for r in victims)  # resumed on the other node
    assert {d["eventId"] for d in found[sub]} == set(wanted)
    assert set(received) == {d["id"] for d in found[sub]}
