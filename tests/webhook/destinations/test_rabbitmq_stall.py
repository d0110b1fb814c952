"""A RabbitMQ that logs the publisher in and then never answers (a proxy in front of the
machine's broker stops passing the broker's frames once the client opens its channel): the
attempt times out and its connection is closed, not left open for the life of the process."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import AsyncIterator

import pytest

from causeflow.webhook.destinations.pool import PublisherPool

pytestmark = pytest.mark.integration

ALLOW = (ipaddress.ip_network("127.0.0.0/8"),)
HEADERS = {"webhook-id": "msg_1", "X-CauseFlow-Event": "incident.created"}
CHANNEL_OPEN = b"\x00\x14\x00\x0a"  # AMQP class 20 (channel), method 10 (open)


class StallingProxy:
    def __init__(self) -> None:
        self.open = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5672)
        stalled = asyncio.Event()

        async def client_to_broker() -> None:
            while data := await reader.read(65536):
                if CHANNEL_OPEN in data:
                    stalled.set()
                up_writer.write(data)
            up_writer.close()  # the publisher hung up: so does the proxy

        async def broker_to_client() -> None:
            while data := await up_reader.read(65536):
                if not stalled.is_set():
                    writer.write(data)

        try:
            await asyncio.gather(client_to_broker(), broker_to_client())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open -= 1
            up_writer.close()
            writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[StallingProxy]:
    stalling = StallingProxy()
    server = await asyncio.start_server(stalling.handle, "127.0.0.1", 0)
    stalling.port = server.sockets[0].getsockname()[1]
    yield stalling
    server.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 2)


async def test_a_broker_that_stalls_after_login_leaves_no_connection(
    proxy: StallingProxy,
) -> None:
    pool = PublisherPool(allow=ALLOW, timeout=1.0)
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
    options = {"exchange": "", "routingKey": "causeflow-stall"}
    try:
        for _ in range(3):
            result = await pool.send("sub_1", "rabbitmq", url, options, b"{}", HEADERS)
            assert not result.ok and result.error == "timeout", result
        deadline = time.monotonic() + 5
        while proxy.open and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert proxy.open == 0, f"{proxy.open} connections left open"
    finally:
        await pool.close()
