"""`events.publish_batch` of both clients against a real `causeflow serve`: the envelopes in the
order given, at consecutive places in the log, a refused batch raising and storing nothing,
and a retried batch (same `idempotency_key`) stored once."""

from __future__ import annotations

import pytest

from causeflow_sdk import AsyncClient, BatchEvent, CauseFlowAPIError, Client
from causeflow_sdk.models import sample_data
from tests.support.serve import Live

pytestmark = pytest.mark.process

KIND = "knowledge.pattern_extracted"


def batch(count: int, summary: str) -> list[BatchEvent]:
    return [
        {"event": KIND, "data": sample_data(KIND, summary=f"{summary}-{i}")} for i in range(count)
    ]


async def test_publish_batch_returns_envelopes_in_order(client: AsyncClient) -> None:
    start = await client.events.publish("user.created", sample_data("user.created"), test=True)
    items = batch(10, "async")
    items[3]["test"] = True
    published = await client.events.publish_batch(items)
    assert [e.data["summary"] for e in published] == [f"async-{i}" for i in range(10)]
    assert published[3].test is True and not published[4].test
    logged = [e.id async for e in client.events.iterate(event=KIND, after=start.id)]
    assert logged == [e.id for e in published]


async def test_a_refused_batch_raises_and_stores_nothing(client: AsyncClient) -> None:
    start = await client.events.publish("user.created", sample_data("user.created"), test=True)
    items = batch(3, "refused")
    items[2] = {"event": KIND, "data": {"summary": "no pattern id"}}
    with pytest.raises(CauseFlowAPIError) as caught:
        await client.events.publish_batch(items)
    assert caught.value.status == 422 and caught.value.code == "validation_error"
    assert all(e["path"].startswith("events.2.") for e in caught.value.details["errors"])
    assert [e.id async for e in client.events.iterate(event=KIND, after=start.id)] == []


async def test_a_retried_batch_is_stored_once(client: AsyncClient) -> None:
    start = await client.events.publish("user.created", sample_data("user.created"), test=True)
    items = batch(2, "retried")
    first = await client.events.publish_batch(items, idempotency_key="sdk-batch-1")
    again = await client.events.publish_batch(items, idempotency_key="sdk-batch-1")
    assert [e.id for e in again] == [e.id for e in first]
    logged = [e.id async for e in client.events.iterate(event=KIND, after=start.id)]
    assert logged == [e.id for e in first]


def test_the_sync_client_publishes_a_batch(live: Live) -> None:
    with Client(live.url, api_key=live.api_key) as cf:
        published = cf.events.publish_batch(batch(3, "sync"))
        assert [e.data["summary"] for e in published] == ["sync-0", "sync-1", "sync-2"]
        assert all(e.event == KIND for e in published)
