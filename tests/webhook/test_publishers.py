"""The publisher pool against the machine's Redis and NATS JetStream: what a refusal, a wrong
password and an unreachable broker record, and that a changed subscription gets a new
publisher while the old one is closed."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
import redis.asyncio as aioredis

from causeflow.webhook.destinations.pool import PublisherPool
from tests.support.brokers import nats_destination, redis_destination, unique
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

ALLOW = (ipaddress.ip_network("127.0.0.0/8"),)
HEADERS = {"webhook-id": "msg_1", "X-CauseFlow-Event": "incident.created"}


@pytest.fixture
async def pool():
    pool = PublisherPool(allow=ALLOW, timeout=3)
    yield pool
    await pool.close()


async def test_redis_entries_carry_the_body_and_lowercase_headers(pool: PublisherPool) -> None:
    async with redis_destination(maxLen=5) as dest:
        for _ in range(250):
            result = await pool.send("sub_1", "redis", dest.url, dest.options, b"{}", HEADERS)
            assert result.ok and result.status is None, result
        messages = await dest.messages(1)
        assert messages[0].body == b"{}"
        assert messages[0].headers == {
            "webhook-id": "msg_1",
            "x-causeflow-event": "incident.created",
        }
        assert len(messages) < 250  # MAXLEN ~ trimmed the stream (whole nodes of 100)


async def test_redis_refusals_and_outages(pool: PublisherPool) -> None:
    key = unique("cf-test-string-")
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    await client.set(key, "not a stream")
    try:
        result = await pool.send(
            "sub_1", "redis", "redis://127.0.0.1:6379", {"stream": key}, b"{}", HEADERS
        )
        assert result.error is not None and result.error.startswith(
            "broker_refused: XADD refused"
        ), result
        assert len(pool) == 1  # a refusal keeps the connection
    finally:
        await client.delete(key)
        await client.aclose()
    result = await pool.send(
        "sub_2", "redis", "redis://nobody:wrong@127.0.0.1:6379", {"stream": key}, b"{}", HEADERS
    )
    assert result.error is not None and result.error.startswith("broker_refused"), result
    assert "wrong" not in result.error  # the password never reaches the attempt log
    port = free_port()
    result = await pool.send(
        "sub_3", "redis", f"redis://127.0.0.1:{port}", {"stream": key}, b"{}", HEADERS
    )
    assert result.error is not None and result.error.startswith("broker_unavailable"), result
    assert len(pool) == 1


async def test_nats_publishes_through_jetstream(pool: PublisherPool) -> None:
    async with nats_destination() as dest:
        result = await pool.send("sub_1", "nats", dest.url, dest.options, b"{}", HEADERS)
        assert result.ok, result
        [message] = await dest.messages(1)
        assert message.body == b"{}" and message.headers["x-causeflow-event"] == "incident.created"
        # a subject no stream stores is refused, not lost silently
        lost = {"subject": unique("cf.nostream."), "stream": None}
        result = await pool.send("sub_1", "nats", dest.url, lost, b"{}", HEADERS)
        assert result.error == "broker_refused: no JetStream stream stores this subject"
        # naming another stream than the one that stores the subject is refused too
        wrong = {**dest.options, "stream": "ANOTHER"}
        result = await pool.send("sub_1", "nats", dest.url, wrong, b"{}", HEADERS)
        assert result.error is not None and result.error.startswith("broker_refused"), result
    port = free_port()
    result = await pool.send(
        "sub_2", "nats", f"nats://127.0.0.1:{port}", {"subject": "a"}, b"{}", HEADERS
    )
    assert result.error is not None and result.error.startswith("broker_unavailable"), result


async def test_a_changed_subscription_gets_a_new_publisher(pool: PublisherPool) -> None:
    closed: list[object] = []

    def spy(publisher: Any) -> None:
        close = publisher.close

        async def recorded() -> None:
            closed.append(publisher)
            await close()

        publisher.close = recorded

    async with redis_destination() as first, redis_destination() as second:
        assert (await pool.send("sub_1", "redis", first.url, first.options, b"1", HEADERS)).ok
        [(_key, old)] = pool._open.values()
        spy(old)
        assert (await pool.send("sub_1", "redis", second.url, second.options, b"2", HEADERS)).ok
        [(_key, new)] = pool._open.values()
        spy(new)
        assert new is not old
        await pool.close()
        assert closed == [old, new] and len(pool) == 0
        assert [m.body for m in await first.messages(1)] == [b"1"]
        assert [m.body for m in await second.messages(1)] == [b"2"]
