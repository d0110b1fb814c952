"""A broker that accepts the connection and never answers (a tarpit): every attempt times out,
is recorded as a failure, and leaves no socket open behind it, for every broker type."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator

import pytest

from causeflow.webhook.destinations.pool import PublisherPool

pytestmark = pytest.mark.integration

ALLOW = (ipaddress.ip_network("127.0.0.0/8"),)
HEADERS = {"webhook-id": "msg_1", "X-CauseFlow-Event": "incident.created"}
TYPES = {
    "redis": ("redis", {"stream": "s"}),
    "nats": ("nats", {"subject": "a.b"}),
    "rabbitmq": ("amqp", {"exchange": "", "routingKey": "q"}),
    "mqtt": ("mqtt", {"topic": "a/b", "qos": 1}),
}


class Tarpit:
    """Accepts connections, reads and never writes; counts the connections still open."""

    def __init__(self) -> None:
        self.open: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open.add(writer)
        try:
            while await reader.read(4096):
                pass
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open.discard(writer)
            writer.close()


@pytest.fixture
async def tarpit() -> AsyncIterator[Tarpit]:
    pit = Tarpit()
    server = await asyncio.start_server(pit.handle, "127.0.0.1", 0)
    pit.port = server.sockets[0].getsockname()[1]
    yield pit
    for writer in list(pit.open):
        writer.close()
    server.close()


async def until_closed(pit: Tarpit, seconds: float = 5.0) -> int:
    deadline = time.monotonic() + seconds
    while pit.open and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return len(pit.open)


@pytest.mark.parametrize("type_", sorted(TYPES))
async def test_a_tarpit_broker_times_out_and_leaves_no_socket(tarpit: Tarpit, type_: str) -> None:
    scheme, options = TYPES[type_]
    url = f"{scheme}://127.0.0.1:{tarpit.port}"
    pool = PublisherPool(allow=ALLOW, timeout=0.5)
    try:
        for _ in range(3):
            started = time.monotonic()
            result = await pool.send("sub_1", type_, url, options, b"{}", HEADERS)
            assert not result.ok and result.error == "timeout", result
            assert time.monotonic() - started < 2.0
        assert len(pool) == 0
        assert await until_closed(tarpit) == 0, f"{len(tarpit.open)} sockets left open"
    finally:
        await pool.close()
