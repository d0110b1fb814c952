"""The client's pull API against a real server: a receiver that saw a gap in the sequence
fetches exactly the missing matches, through the async and the sync client."""

from __future__ import annotations

import asyncio
import time

import pytest

from causeflow_sdk import AsyncClient, Client, GapTracker
from causeflow_sdk.models import sample_data
from tests.support.receiver import Receiver
from tests.support.serve import Live

pytestmark = pytest.mark.process


async def test_gaps_are_fetched_through_messages(client: AsyncClient, live: Live) -> None:
    async with Receiver() as receiver:
        sub = await client.subscriptions.create(
            receiver.url_for("/pull"), ["investigation.progress"], ordering="ordered"
        )
        assert sub.ordering == "ordered"
        for _ in range(5):
            await client.events.publish(
                "investigation.progress", sample_data("investigation.progress")
            )
        requests = await receiver.wait_for(5, path="/pull", timeout=20)
    tracker = GapTracker()
    for r in requests:
        if int(r.headers["X-CauseFlow-Sequence"]) not in (2, 3):  # say these two got lost
            tracker.observe(r.headers)
    [gap] = tracker.missing()
    assert (gap.subscription_id, gap.after_sequence, gap.through) == (sub.id, 1, 3)
    fetched = []
    async for message in client.subscriptions.messages(
        sub.id, after_sequence=gap.after_sequence, limit=1
    ):
        if message.sequence > gap.through:
            break
        fetched.append(message)
        tracker.see(sub.id, message.sequence)
    assert [m.sequence for m in fetched] == [2, 3]
    bodies = {int(r.headers["X-CauseFlow-Sequence"]): r.json() for r in requests}
    assert [m.event for m in fetched] == [bodies[2], bodies[3]]
    assert tracker.contiguous(sub.id) == 5
    deadline = time.monotonic() + 10
    while (await client.subscriptions.messages_page(sub.id)).items[-1].status != "succeeded":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    def pull() -> list[int]:
        with Client(live.url, api_key=live.api_key) as cf:
            return [m.sequence for m in cf.subscriptions.messages(sub.id, after_sequence=3)]

    assert await asyncio.to_thread(pull) == [4, 5]
