"""`AsyncClient.stream` against a real server: filters, reset, and a restart losing nothing."""

from __future__ import annotations

import asyncio

import pytest

from causeflow_sdk import AsyncClient, StreamReset
from causeflow_sdk.models import Envelope, sample_data
from tests.support.serve import Live

pytestmark = pytest.mark.process

FAST = {"backoff_base": 0.1, "backoff_max": 0.5}


async def publish(client: AsyncClient, event_type: str) -> str:
    return (await client.events.publish(event_type, sample_data(event_type), test=True)).id


async def test_filters_and_reset(client: AsyncClient) -> None:
    connected = asyncio.Event()
    unknown = "evt_01M86BJ2JKYYK596NGYA1DQ91K"
    stream = client.stream(
        events=["trigger.created"], last_event_id=unknown, on_connect=lambda _: connected.set()
    )
    async with stream:
        items = aiter(stream)
        first = await asyncio.wait_for(anext(items), 10)
        assert first == StreamReset(reason="cursor_expired", last_event_id=unknown)
        await asyncio.wait_for(connected.wait(), 10)
        await publish(client, "trigger.deleted")  # filtered out
        wanted = await publish(client, "trigger.created")
        item = await asyncio.wait_for(anext(items), 10)
        assert isinstance(item, Envelope) and item.id == wanted and item.test is True


async def test_resumes_across_a_server_restart_without_losing_events(
    client: AsyncClient, live: Live
) -> None:
    connects: list[str | None] = []
    stream = client.stream(events=["user.created"], on_connect=connects.append, **FAST)
    async with stream, asyncio.timeout(60):
        items = aiter(stream)
        first = asyncio.ensure_future(anext(items))
        while not connects:
            await asyncio.sleep(0.02)
        before = [await publish(client, "user.created") for _ in range(3)]
        received = [await first, await anext(items), await anext(items)]
        # The iterator only runs when asked for the next item, so everything below happens
        # while it is away: the restart cuts its connection, and these events are committed
        # before it reconnects. They can reach it only by Last-Event-ID replay.
        await asyncio.to_thread(live.server.restart)
        after = [await publish(client, "user.created") for _ in range(3)]
        assert connects == [None]  # not back yet
        received += [await anext(items) for _ in range(3)]
        live_again = await publish(client, "user.created")
        received.append(await anext(items))
    assert [e.id for e in received if isinstance(e, Envelope)] == [*before, *after, live_again]
    assert connects == [None, before[-1]]
