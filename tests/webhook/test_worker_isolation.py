"""Isolation and leases: a dead endpoint cannot delay a healthy one, per-host and global caps,
per-subscription rates, shutdown hands leases back, and two engines on one PostgreSQL database
never send one delivery twice and share one per-host cap."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from causeflow.webhook.tables import deliveries, host_slots
from tests.support.pg import fresh_database_async, require_pg
from tests.support.receiver import Concurrent, Hang, Receiver

from .delivery_support import (
    add_deliveries,
    add_event,
    add_subscription,
    attempts_of,
    bare_context,
    delivery,
    running_engine,
    wait_until_settled,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def healthy() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


@pytest.fixture
async def dead() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        r.set_behavior(None, Hang())
        yield r


async def test_a_hanging_endpoint_does_not_delay_a_healthy_one(
    tmp_path: Path, healthy: Receiver, dead: Receiver
) -> None:
    async with bare_context(
        tmp_path,
        webhook_max_inflight_per_host=4,
        webhook_timeout_seconds=120,
        webhook_lease_seconds=300,
        webhook_retry_schedule="60s",
    ) as ctx:
        stuck = await add_subscription(ctx, dead.url_for("/"))
        fine = await add_subscription(ctx, healthy.url_for("/"))
        event = await add_event(ctx)
        # the dead endpoint's backlog is older, so it is claimed first
        held = await add_deliveries(ctx, stuck, event, 40)
        async with running_engine(ctx, batch_size=16):
            await dead.wait_for(4)
            msgs = await add_deliveries(ctx, fine, event, 20)
            await healthy.wait_for(20, timeout=30)
            rows = await wait_until_settled(ctx, msgs)
            # all of them while the dead endpoint still holds its four: none of those has ended
            # (each would only at the 120 s timeout)
            assert {(await delivery(ctx, m)).attempts for m in held} == {0}
            # never more than the per-host cap in flight to the dead one
            await asyncio.sleep(0.2)
            assert len(dead.requests) == 4
        assert all(r.status == "succeeded" for r in rows)
        assert sorted(r.headers["webhook-id"] for r in healthy.requests) == sorted(msgs)


async def test_the_global_in_flight_bound(tmp_path: Path, dead: Receiver) -> None:
    async with bare_context(tmp_path, webhook_max_inflight=3) as ctx:
        sub = await add_subscription(ctx, dead.url_for("/"))
        await add_deliveries(ctx, sub, await add_event(ctx), 10)
        async with running_engine(ctx) as engine:
            await dead.wait_for(3)
            await asyncio.sleep(0.3)
            assert len(dead.requests) == 3
            assert engine.snapshot()["inflight"] == 3


async def test_a_subscription_rate_limit_spaces_its_attempts(
    tmp_path: Path, healthy: Receiver
) -> None:
    async with bare_context(tmp_path) as ctx:
        sub = await add_subscription(ctx, healthy.url_for("/"), rate=5)
        msgs = await add_deliveries(ctx, sub, await add_event(ctx), 10)
        async with running_engine(ctx):
            reqs = await healthy.wait_for(10, timeout=5)
            await wait_until_settled(ctx, msgs)
    times = sorted(r.received_at for r in reqs)
    # the first at once, then one every 1/5 s: never more than 5 (+1) in any second
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.15, gaps
    assert times[9] - times[0] >= 1.75
    assert max(sum(1 for t in times if s <= t < s + 1.0) for s in times) <= 6


async def test_stop_hands_leases_back_and_another_engine_finishes(
    tmp_path: Path, dead: Receiver
) -> None:
    async with bare_context(tmp_path) as ctx:
        sub = await add_subscription(ctx, dead.url_for("/"))
        msgs = await add_deliveries(ctx, sub, await add_event(ctx), 6)
        async with running_engine(ctx, owner="first", grace_seconds=0.3):
            await dead.wait_for(6)
        async with ctx.db.read() as conn:
            rows = (await conn.execute(select(deliveries).where(deliveries.c.id.in_(msgs)))).all()
        assert {(r.status, r.lease_owner, r.lease_until, r.attempts) for r in rows} == {
            ("pending", None, None, 0)
        }
        dead.set_behavior(None, Hang(0))  # answers 200 at once now
        async with running_engine(ctx, owner="second"):
            done = await wait_until_settled(ctx, msgs)
        assert {r.status for r in done} == {"succeeded"}
        # the interrupted attempts were sent again with the same webhook-id
        assert Counter(r.headers["webhook-id"] for r in dead.requests) == dict.fromkeys(msgs, 2)


async def test_two_engines_on_one_postgresql_database_never_double_send(
    tmp_path: Path, healthy: Receiver
) -> None:
    require_pg()
    async with (
        fresh_database_async() as url,
        bare_context(tmp_path / "a", url) as ctx_a,
        bare_context(tmp_path / "b", url) as ctx_b,
    ):
        subs = [await add_subscription(ctx_a, healthy.url_for(f"/{i}")) for i in range(4)]
        event = await add_event(ctx_a)
        msgs: list[str] = []
        async with (
            running_engine(ctx_a, owner="a", batch_size=32) as a,
            running_engine(ctx_b, owner="b", batch_size=32) as b,
        ):
            for _ in range(5):
                for sub in subs:
                    msgs += await add_deliveries(ctx_a, sub, event, 20)
                a.wake()
                b.wake()
                await asyncio.sleep(0.02)
            rows = await wait_until_settled(ctx_a, msgs, timeout=20)
            shares = (a.snapshot()["attempted"], b.snapshot()["attempted"])
        assert sum(shares) == 400
        assert min(shares) > 0  # both took part
        assert {r.status for r in rows} == {"succeeded"}
        ids = Counter(r.headers["webhook-id"] for r in healthy.requests)
        assert len(ids) == 400
        assert set(ids.values()) == {1}, [m for m, n in ids.items() if n > 1]
        assert {r.attempts for r in rows} == {1}
        assert len(await attempts_of(ctx_b, msgs[0])) == 1


async def test_two_engines_on_postgresql_share_one_host_cap(tmp_path: Path) -> None:
    require_pg()
    slow = Concurrent(0.1)
    async with (
        Receiver() as receiver,
        fresh_database_async() as url,
        bare_context(tmp_path / "a", url, webhook_max_inflight_per_host=4) as ctx_a,
        bare_context(tmp_path / "b", url, webhook_max_inflight_per_host=4) as ctx_b,
    ):
        receiver.set_behavior(None, slow)
        sub = await add_subscription(ctx_a, receiver.url_for("/"))
        msgs = await add_deliveries(ctx_a, sub, await add_event(ctx_a), 60)
        async with (
            running_engine(ctx_a, owner="a", batch_size=16) as a,
            running_engine(ctx_b, owner="b", batch_size=16) as b,
        ):
            rows = await wait_until_settled(ctx_a, msgs, timeout=20)
            # both had work for the host and both got a share of its slots
            assert a.attempted >= 5 and b.attempted >= 5, (a.attempted, b.attempted)
        async with ctx_a.db.read() as conn:
            held = (
                await conn.execute(select(host_slots).where(host_slots.c.owner.is_not(None)))
            ).all()
    assert {r.status for r in rows} == {"succeeded"}
    assert slow.most() == 4  # the cap, used, and never more across the two
    assert held == []  # stopping gave every slot back
