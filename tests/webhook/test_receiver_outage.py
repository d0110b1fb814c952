"""A receiver that answers 503 for a while, then is down altogether (connection refused), then
comes back, while events keep being published: everything reaches it after the recovery, and a
healthy receiver of the same events is served at the first attempt throughout."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.support.cluster import log_ids, pg_cluster, publish, subscribe, wait_all_succeeded
from tests.support.receiver import Ok, Status, ThreadedReceiver
from tests.support.traffic import Publisher, finish, run_all

pytestmark = pytest.mark.process

# Kept well inside the retry schedule (0.5, 0.5, 1, 1, 2 s, ±20 %: at least 4 s to exhaust),
# so no delivery gives up during the outage.
FAILING_SECONDS = 1.2
DOWN_SECONDS = 1.2


async def test_receiver_down_then_back_gets_everything(tmp_path: Path) -> None:
    with ThreadedReceiver() as steady, pg_cluster(tmp_path) as cluster:
        hdr, bases = cluster.headers, cluster.bases
        flaky = ThreadedReceiver().start()
        back: ThreadedReceiver | None = None
        try:
            flaky.set_behavior(None, Status(503, b"maintenance"))
            async with aiohttp.ClientSession() as session:
                url = flaky.url_for("/hook")
                sub_flaky = await subscribe(session, bases[0], hdr, url)
                sub_steady = await subscribe(session, bases[1], hdr, steady.url_for("/hook"))
                seed = await publish(session, bases[0], hdr, "seed")
                publishing = asyncio.Event()
                publishers = [
                    Publisher(session, bases, hdr, name=f"p{i}", pause=0.05) for i in (1, 2)
                ]
                tasks = run_all(publishing, *publishers)
                await asyncio.sleep(FAILING_SECONDS)
                await asyncio.to_thread(flaky.stop)  # now the port refuses connections
                await asyncio.sleep(DOWN_SECONDS)
                back = ThreadedReceiver(port=flaky.port).start()
                back.set_behavior(None, Ok())
                await asyncio.sleep(0.5)
                await finish(publishing, tasks)
                log = await log_ids(session, bases[1], hdr)
                wanted = log[log.index(seed) :]
                found = await wait_all_succeeded(
                    session, bases[0], hdr, [sub_flaky, sub_steady], len(wanted), timeout=30
                )
            # the first one is stopped: its records are read directly, no loop to ask
            refused = list(flaky.receiver.requests)
            after = back.requests
            steady_got = steady.requests
        finally:
            flaky.stop()
            if back is not None:
                back.stop()

    accepted = {i for p in publishers for i in p.accepted}
    assert accepted <= set(wanted)
    for sub in (sub_flaky, sub_steady):
        assert {d["eventId"] for d in found[sub]} == set(wanted)
    # the outage was felt: 503s answered, then attempts refused, then retried
    assert Counter(r.status for r in refused)[503] >= 10
    assert any(d["attempts"] >= 3 for d in found[sub_flaky])
    # after the recovery every delivery arrived, and was answered 200
    delivered = {r.headers["webhook-id"] for r in after if r.status == 200}
    assert delivered == {d["id"] for d in found[sub_flaky]}
    # the other receiver never waited for this one
    assert {d["attempts"] for d in found[sub_steady]} == {1}
    assert {r.headers["webhook-id"] for r in steady_got} == {d["id"] for d in found[sub_steady]}
