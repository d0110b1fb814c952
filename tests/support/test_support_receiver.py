"""The webhook receiver harness, driven by a real aiohttp client over loopback."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.support.ports import free_port, port_open
from tests.support.receiver import (
    Drop,
    Fail,
    Hang,
    Ok,
    Receiver,
    Redirect,
    Sequence,
    Slow,
    Status,
    ThreadedReceiver,
    TooMany,
)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    client: aiohttp.ClientSession, url: str, body: bytes = b"{}", **kwargs: object
) -> tuple[int, dict[str, str], bytes]:
    async with client.post(url, data=body, **kwargs) as response:  # type: ignore[arg-type]
        return response.status, dict(response.headers), await response.read()


@pytest.mark.integration
async def test_records_method_path_query_headers_and_body(
    receiver: Receiver, client: aiohttp.ClientSession
) -> None:
    status, _, _ = await post(
        client,
        receiver.url_for("/hooks/a?x=1"),
        b'{"hello": "world"}',
        headers={"Webhook-Id": "msg_1", "X-Multi": "a"},
    )
    assert status == 200
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hooks/a"
    assert request.query == "x=1"
    assert request.body == b'{"hello": "world"}'
    assert request.json() == {"hello": "world"}
    assert request.status == 200
    # Spelling as sent is kept; lookups ignore case.
    assert "Webhook-Id" in request.headers.keys()
    assert request.headers.get("webhook-id") == "msg_1"
    assert request.headers["WEBHOOK-ID"] == "msg_1"
    assert "webhook-id" in request.headers
    assert request.headers.get("absent", "dflt") == "dflt"
    assert abs(request.received_at - time.monotonic()) < 5
    assert abs(request.received_at_wall - time.time()) < 5


@pytest.mark.integration
async def test_repeated_headers_are_joined_and_raw_lines_kept(receiver: Receiver) -> None:
    # aiohttp's client merges duplicates itself, so write the request by hand.
    reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
    writer.write(
        b"POST /dup HTTP/1.1\r\nHost: x\r\nX-Tag: one\r\nx-tag: two\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    writer.close()
    await writer.wait_closed()
    [request] = await receiver.wait_for(1)
    assert request.headers.get("X-TAG") == "one, two"
    assert ("X-Tag", "one") in request.raw_headers
    assert ("x-tag", "two") in request.raw_headers


@pytest.mark.integration
async def test_ok_with_status_and_body(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    receiver.set_behavior("/a", Ok(status=204))
    receiver.set_behavior("/b", Ok(body=b"thanks", headers={"X-Seen": "1"}))
    assert (await post(client, receiver.url_for("/a")))[0] == 204
    status, headers, body = await post(client, receiver.url_for("/b"))
    assert (status, headers["X-Seen"], body) == (200, "1", b"thanks")


@pytest.mark.integration
async def test_fail_n_times_then_ok(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    receiver.set_behavior(None, Fail(status=503, times=2))
    statuses = [(await post(client, receiver.url_for()))[0] for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert [r.status for r in receiver.requests] == statuses


@pytest.mark.integration
async def test_fail_forever(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    receiver.set_behavior(None, Fail())
    statuses = [(await post(client, receiver.url_for()))[0] for _ in range(3)]
    assert statuses == [500, 500, 500]


@pytest.mark.integration
async def test_status_410(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    receiver.set_behavior("/gone", Status(410))
    assert (await post(client, receiver.url_for("/gone")))[0] == 410


@pytest.mark.integration
async def test_too_many_sends_retry_after(
    receiver: Receiver, client: aiohttp.ClientSession
) -> None:
    receiver.set_behavior(None, TooMany(retry_after="7"))
    status, headers, _ = await post(client, receiver.url_for())
    assert (status, headers["Retry-After"]) == (429, "7")
    receiver.set_behavior(None, TooMany(retry_after=None))
    status, headers, _ = await post(client, receiver.url_for())
    assert status == 429 and "Retry-After" not in headers


@pytest.mark.integration
async def test_redirect(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    receiver.set_behavior("/old", Redirect("http://127.0.0.1:9/new", status=307))
    status, headers, _ = await post(client, receiver.url_for("/old"), allow_redirects=False)
    assert (status, headers["Location"]) == (307, "http://127.0.0.1:9/new")


@pytest.mark.integration
async def test_slow_answers_after_delay(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    receiver.set_behavior(None, Slow(0.3, status=202))
    started = time.monotonic()
    status, _, _ = await post(client, receiver.url_for())
    assert status == 202
    assert time.monotonic() - started >= 0.3


@pytest.mark.integration
async def test_hang_makes_the_client_time_out_and_stop_stays_fast(
    client: aiohttp.ClientSession,
) -> None:
    receiver = await Receiver().start()
    try:
        receiver.set_behavior(None, Hang())
        with pytest.raises(TimeoutError):
            await post(client, receiver.url_for(), timeout=aiohttp.ClientTimeout(total=0.3))
        [request] = await receiver.wait_for(1)
        assert request.status is None  # recorded on arrival, never answered
        # A second hanging request still open while stopping must not delay the stop.
        pending = asyncio.create_task(post(client, receiver.url_for()))
        await receiver.wait_for(2)
    finally:
        # the hanging request would hold a stop that waited for it for an hour
        await asyncio.wait_for(receiver.stop(), timeout=30)
    with pytest.raises(aiohttp.ClientError):
        await pending


@pytest.mark.integration
async def test_drop_closes_the_connection(
    receiver: Receiver, client: aiohttp.ClientSession
) -> None:
    receiver.set_behavior(None, Drop())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(client, receiver.url_for())
    assert len(receiver.requests) == 1


@pytest.mark.integration
async def test_sequence_then_last_step_repeats(
    receiver: Receiver, client: aiohttp.ClientSession
) -> None:
    receiver.set_behavior(None, Sequence([Status(500), TooMany("1"), Ok(status=204)]))
    statuses = [(await post(client, receiver.url_for()))[0] for _ in range(5)]
    assert statuses == [500, 429, 204, 204, 204]


@pytest.mark.integration
async def test_behaviour_per_path_and_reset(
    receiver: Receiver, client: aiohttp.ClientSession
) -> None:
    receiver.set_behavior("/a", Status(410))
    receiver.set_behavior(None, Status(500))
    assert (await post(client, receiver.url_for("/a")))[0] == 410
    assert (await post(client, receiver.url_for("/b")))[0] == 500
    receiver.reset_behaviors()
    assert (await post(client, receiver.url_for("/a")))[0] == 200


@pytest.mark.integration
async def test_wait_for_wakes_on_arrival(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    async def a_few_turns_of_the_loop() -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    waiter = asyncio.create_task(receiver.wait_for(2, timeout=30, path="/x"))
    await a_few_turns_of_the_loop()
    assert not waiter.done()
    await post(client, receiver.url_for("/x"))
    await post(client, receiver.url_for("/other"))
    await a_few_turns_of_the_loop()
    assert not waiter.done()  # the request to /other does not count
    await post(client, receiver.url_for("/x"))
    # Woken by the arrival itself, within a few turns of the loop: no time has to pass, as it
    # would for a polling interval.
    await a_few_turns_of_the_loop()
    assert waiter.done()
    assert [r.path for r in await waiter] == ["/x", "/x"]


@pytest.mark.integration
async def test_wait_for_times_out_saying_what_came(
    receiver: Receiver, client: aiohttp.ClientSession
) -> None:
    await post(client, receiver.url_for("/one"))
    with pytest.raises(TimeoutError, match=r"expected 2 requests within 0.2 s, got 1"):
        await receiver.wait_for(2, timeout=0.2)


@pytest.mark.integration
async def test_clear_forgets_requests(receiver: Receiver, client: aiohttp.ClientSession) -> None:
    await post(client, receiver.url_for())
    receiver.clear()
    assert receiver.requests == []
    await post(client, receiver.url_for())
    assert len(await receiver.wait_for(1, timeout=1)) == 1


@pytest.mark.integration
async def test_stopped_receiver_refuses_then_comes_back_on_same_port(
    client: aiohttp.ClientSession,
) -> None:
    receiver = await Receiver().start()
    port = receiver.port
    await post(client, receiver.url_for())
    await receiver.stop()
    assert not port_open(port)
    await receiver.start()
    try:
        assert receiver.port == port
        assert (await post(client, receiver.url_for()))[0] == 200
        assert len(receiver.requests) == 2  # recordings survive a restart
    finally:
        await receiver.stop()


@pytest.mark.integration
async def test_fixed_port() -> None:
    port = free_port()
    async with Receiver(port=port) as receiver:
        assert receiver.url == f"http://127.0.0.1:{port}"
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass


@pytest.mark.process
def test_threaded_receiver_from_sync_code() -> None:
    with ThreadedReceiver() as receiver:
        receiver.set_behavior("/later", Fail(status=502, times=1))
        request = urllib.request.Request(receiver.url_for("/sync"), data=b"abc", method="PUT")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        [got] = receiver.wait_for_sync(1, timeout=5)
        assert (got.method, got.path, got.body) == ("PUT", "/sync", b"abc")

        # A real subprocess posts twice; the first answer is the scripted failure.
        script = (
            "import sys, urllib.request, urllib.error\n"
            "for _ in range(2):\n"
            "    try:\n"
            "        urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=b'x'))\n"
            "        print(200)\n"
            "    except urllib.error.HTTPError as e:\n"
            "        print(e.code)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script, receiver.url_for("/later")],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert result.stdout.split() == ["502", "200"]
        later = receiver.wait_for_sync(2, timeout=5, path="/later")
        assert [r.status for r in later] == [502, 200]
        assert len(receiver.requests) == 3
        with pytest.raises(TimeoutError):
            receiver.wait_for_sync(4, timeout=0.2)
        receiver.clear()
        assert receiver.requests == []
        port = receiver.port
    assert not port_open(port)


@pytest.mark.integration
async def test_threaded_receiver_awaited_from_another_loop(client: aiohttp.ClientSession) -> None:
    with ThreadedReceiver() as receiver:
        waiter = asyncio.create_task(receiver.wait_for(1, timeout=5))
        await post(client, receiver.url_for("/x"))
        [got] = await waiter
        assert got.path == "/x"
