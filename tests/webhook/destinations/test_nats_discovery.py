"""A NATS server may announce other cluster members (`connect_urls` in INFO). The publisher
connects only to the address the SSRF rules vetted: an announced URL is never dialled, neither
after a lost connection nor on the next attempt."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import AsyncIterator

import pytest

from causeflow.webhook.destinations.pool import PublisherPool

pytestmark = pytest.mark.integration

ALLOW = (ipaddress.ip_network("127.0.0.0/8"),)
HEADERS = {"webhook-id": "msg_1", "X-CauseFlow-Event": "incident.created"}


class Listener:
    def __init__(self) -> None:
        self.accepted = 0
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self, handler: object = None) -> None:
        async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            if handler is not None:
                await handler(reader, writer)  # type: ignore[operator]
            writer.close()

        self.server = await asyncio.start_server(count, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]


@pytest.fixture
async def listeners() -> AsyncIterator[tuple[Listener, Listener]]:
    elsewhere = Listener()
    await elsewhere.start()
    info = {
        "server_id": "hostile",
        "version": "2.10.0",
        "proto": 1,
        "headers": True,
        "max_payload": 1048576,
        "connect_urls": [f"127.0.0.1:{elsewhere.port}", f"[::1]:{elsewhere.port}"],
    }
    line = f"INFO {json.dumps(info)}\r\n".encode()

    async def hostile(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(line)
        while data := await reader.readline():
            if data.startswith(b"PING"):
                writer.write(line + b"PONG\r\n")  # announce again, as a cluster change does
            elif data.startswith(b"PUB") or data.startswith(b"HPUB"):
                # gone while the publish waits for its PubAck, and for good: a client that
                # reconnects by itself would now try the servers it was told about
                assert nats_like.server is not None
                nats_like.server.close()
                return

    nats_like = Listener()
    await nats_like.start(hostile)
    yield nats_like, elsewhere
    for listener in (nats_like, elsewhere):
        assert listener.server is not None
        listener.server.close()


async def test_announced_servers_are_never_dialled(listeners: tuple[Listener, Listener]) -> None:
    nats_like, elsewhere = listeners
    pool = PublisherPool(allow=ALLOW, timeout=1.0)
    try:
        for _ in range(2):
            result = await pool.send(
                "sub_1",
                "nats",
                f"nats://127.0.0.1:{nats_like.port}",
                {"subject": "a.b"},
                b"{}",
                HEADERS,
            )
            assert not result.ok, result
            await asyncio.sleep(0.3)  # room for a reconnect to the announced server
    finally:
        await pool.close()
    # the vetted address was dialled (a client may dial it again on its own: that is allowed)
    assert nats_like.accepted >= 1
    assert elsewhere.accepted == 0
