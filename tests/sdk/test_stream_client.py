"""The stream iterator's edges against a loopback stand-in: drops, resets, refusals, silence."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from causeflow_sdk import AsyncClient, CauseFlowAPIError, Client, RawEvent, StreamReset
from causeflow_sdk.models import Envelope
from tests.sdk.sse_standin import StandIn, ThreadedStandIn

pytestmark = pytest.mark.integration

FAST = {"backoff_base": 0.01, "backoff_max": 0.05}


@pytest.fixture
async def standin() -> AsyncIterator[StandIn]:
    server = await StandIn().start()
    try:
        yield server
    finally:
        await server.stop()


async def wait_until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_resumes_after_a_drop_without_losing_or_repeating(standin: StandIn) -> None:
    connected: list[str | None] = []
    dropped: list[tuple[BaseException | None, float]] = []
    async with AsyncClient(standin.url, api_key="good-key") as client:
        stream = client.stream(
            on_connect=connected.append,
            on_disconnect=lambda e, d: dropped.append((e, d)),
            **FAST,
        )
        items = aiter(stream)
        first = asyncio.ensure_future(anext(items))
        await wait_until(lambda: connected)
        e1 = await standin.publish()
        e2 = await standin.publish("remediation.proposed")
        got = [await first, await anext(items)]
        assert [g.id for g in got if isinstance(g, Envelope)] == [e1, e2]
        assert got[1].event == "remediation.proposed"

        standin.drop()
        e3 = await standin.publish()  # committed while the client is away
        e4 = await standin.publish()
        got = [await anext(items), await anext(items)]
        assert [g.id for g in got if isinstance(g, Envelope)] == [e3, e4]
        assert standin.resumed_from == [None, e2]
        assert connected == [None, e2]
        assert len(dropped) == 1
        assert stream.last_event_id == e4
        await stream.close()
        with pytest.raises(StopAsyncIteration):
            await anext(items)


async def test_reset_is_an_item_and_the_stream_goes_on(standin: StandIn) -> None:
    await standin.publish()
    unknown = "evt_01M86BJ2JKYYK596NGYA1DQ91K"
    async with AsyncClient(standin.url, api_key="good-key") as client:
        async with client.stream(last_event_id=unknown, **FAST) as stream:
            items = aiter(stream)
            first = await anext(items)
            assert first == StreamReset(reason="cursor_expired", last_event_id=unknown)
            live = await standin.publish()
            second = await anext(items)
            assert isinstance(second, Envelope) and second.id == live
    assert standin.resumed_from == [unknown]


async def test_raw_items_carry_the_exact_bytes(standin: StandIn) -> None:
    async with AsyncClient(standin.url, api_key="good-key") as client:
        async with client.stream(events=["incident.created"], **FAST) as stream:
            items = stream.raw()
            pending = asyncio.ensure_future(anext(items))
            await wait_until(lambda: standin.resumed_from)
            await asyncio.sleep(0.05)
            event_id = await standin.publish()
            item = await pending
            assert isinstance(item, RawEvent)
            assert item.data == standin.events[-1][2] and item.id == event_id
            assert item.envelope().id == event_id


async def test_refused_credentials_end_the_iteration(standin: StandIn) -> None:
    async with AsyncClient(standin.url, api_key="wrong") as client:
        with pytest.raises(CauseFlowAPIError) as caught:
            async for _ in client.stream(**FAST):
                pass
    assert caught.value.status == 401 and caught.value.code == "unauthorized"
    assert standin.resumed_from == [None]  # not retried


async def test_busy_and_failing_servers_are_retried(standin: StandIn) -> None:
    standin.refuse = [503, 429, 502]
    errors: list[BaseException | None] = []
    async with AsyncClient(standin.url, api_key="good-key") as client:
        async with client.stream(on_disconnect=lambda e, d: errors.append(e), **FAST) as stream:
            items = aiter(stream)
            pending = asyncio.ensure_future(anext(items))
            await wait_until(lambda: len(standin.resumed_from) == 4)
            await asyncio.sleep(0.05)
            event_id = await standin.publish()
            assert (await pending).id == event_id  # type: ignore[union-attr]
    assert [e.status for e in errors if isinstance(e, CauseFlowAPIError)] == [503, 429, 502]


async def test_max_reconnects_gives_up_with_the_last_error(standin: StandIn) -> None:
    standin.refuse = [503] * 10
    async with AsyncClient(standin.url, api_key="good-key") as client:
        with pytest.raises(CauseFlowAPIError) as caught:
            async for _ in client.stream(max_reconnects=2, **FAST):
                pass
    assert caught.value.status == 503
    assert len(standin.resumed_from) == 3  # the first try and two reconnects


async def test_a_silent_connection_is_replaced(standin: StandIn) -> None:
    standin.silent = True
    async with AsyncClient(standin.url, api_key="good-key") as client:
        async with client.stream(idle_timeout=0.2, **FAST) as stream:
            pending = asyncio.ensure_future(anext(aiter(stream)))
            await wait_until(lambda: len(standin.resumed_from) >= 2)
            pending.cancel()


def test_the_sync_client_streams_too() -> None:
    threaded = ThreadedStandIn()
    with threaded as standin:
        connected = threading.Event()
        with Client(standin.url, api_key="good-key") as client:
            with client.stream(on_connect=lambda _: connected.set(), **FAST) as stream:
                items = iter(stream)
                publisher = threading.Thread(
                    target=lambda: connected.wait(5) and threaded.publish("user.created")
                )
                publisher.start()
                item = next(items)
                publisher.join()
                assert isinstance(item, Envelope) and item.event == "user.created"
                assert stream.last_event_id == item.id
