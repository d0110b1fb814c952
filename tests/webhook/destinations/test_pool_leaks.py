"""The publisher pool does not keep connections of subscriptions it no longer sends for: a
deleted (or disabled, or changed to a webhook) subscription's publisher is closed once idle.
Counted on a private Redis, whose clients are ours only."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from causeflow.webhook.destinations.pool import PublisherPool
from tests.support.brokers import broker_process

pytestmark = pytest.mark.process

ALLOW = (ipaddress.ip_network("127.0.0.0/8"),)
HEADERS = {"webhook-id": "msg_1", "X-CauseFlow-Event": "incident.created"}


async def clients(port: int) -> int:
    probe = aioredis.Redis(host="127.0.0.1", port=port)
    try:
        return int((await probe.info("clients"))["connected_clients"]) - 1  # not the probe
    finally:
        await probe.aclose()


async def test_idle_publishers_of_gone_subscriptions_are_closed(tmp_path: Path) -> None:
    with broker_process("redis", tmp_path / "redis") as broker:
        url = f"redis://127.0.0.1:{broker.port}/0"
        pool = PublisherPool(allow=ALLOW, timeout=3, idle_seconds=1.0)
        try:
            for n in range(50):
                result = await pool.send(f"sub_{n}", "redis", url, {"stream": "s"}, b"{}", HEADERS)
                assert result.ok, result
            assert await clients(broker.port) == 50
            # sub_0 keeps publishing: its connection stays; the 49 others are gone
            deadline = time.monotonic() + 15
            while await clients(broker.port) > 1:
                assert time.monotonic() < deadline, await clients(broker.port)
                result = await pool.send("sub_0", "redis", url, {"stream": "s"}, b"{}", HEADERS)
                assert result.ok, result
                await asyncio.sleep(0.2)
            assert len(pool) == 1
        finally:
            await pool.close()
        assert await clients(broker.port) == 0
