"""At least once across an engine stop: a broker that takes the XADD and never answers holds
the attempt when the engine stops; the delivery is handed back, due again, never counted as
delivered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from causeflow.webhook.engine import DeliveryEngine
from tests.support.inproc import Service
from tests.support.webhook import SUBS, append, delivery_rows, dispatch_pending

pytestmark = pytest.mark.integration


class SilentRedis:
    """Answers the connection's commands (+PONG, +OK, HELLO unknown) and never an XADD."""

    def __init__(self) -> None:
        self.xadds = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if not line.startswith(b"*"):
                    continue
                args = []
                for _ in range(int(line[1:])):
                    await reader.readline()  # $<length>
                    args.append((await reader.readline()).strip().upper())
                if args[0] == b"XADD":
                    self.xadds += 1  # and never a reply
                elif args[0] == b"HELLO":  # an old server: the client falls back to RESP2
                    writer.write(b"-ERR unknown command 'HELLO'\r\n")
                else:
                    writer.write(b"+PONG\r\n" if args[0] == b"PING" else b"+OK\r\n")
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def silent() -> AsyncIterator[SilentRedis]:
    redis = SilentRedis()
    server = await asyncio.start_server(redis.handle, "127.0.0.1", 0)
    redis.port = server.sockets[0].getsockname()[1]
    yield redis
    server.close()


async def test_a_publish_awaiting_its_ack_at_stop_is_due_again(
    service: Service, silent: SilentRedis
) -> None:
    tenant = await service.tenant("acme")
    resp = await service.client.post(
        SUBS,
        headers=tenant.admin_headers,
        json={
            "type": "redis",
            "url": f"redis://127.0.0.1:{silent.port}/0",
            "options": {"stream": "s"},
            "events": ["*"],
        },
    )
    assert resp.status_code == 201, resp.text
    await append(service, tenant)
    assert await dispatch_pending(service.ctx) == 1
    engine = DeliveryEngine(service.ctx, grace_seconds=0.3)
    await engine.start()
    try:
        deadline = time.monotonic() + 10
        while silent.xadds == 0:
            assert time.monotonic() < deadline, await delivery_rows(service, tenant)
            await asyncio.sleep(0.05)
    finally:
        await engine.stop()
    [row] = await delivery_rows(service, tenant)
    assert row.status == "pending", row
    assert row.lease_owner is None, row
    assert row.next_attempt_at is not None
    assert row.next_attempt_at <= service.ctx.clock.now_ms() + 1000, row
