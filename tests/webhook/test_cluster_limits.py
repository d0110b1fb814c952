"""The SQL of the delivery limits several worker processes share, on both databases: host
slots leased per origin (taken, renewed, released, and free again once a dead owner's lease
runs out) and the per-subscription start schedule reserved in batches."""

from __future__ import annotations

from pathlib import Path

import pytest

from causeflow.webhook import cluster

from .delivery_support import bare_context

pytestmark = pytest.mark.integration

ORIGIN = "https://hooks.example.com:443"
LEASE = 60_000


async def test_host_slots_are_leased_renewed_released_and_expire(
    tmp_path: Path, database_url: str
) -> None:
    async with bare_context(tmp_path, database_url) as ctx:
        db, now = ctx.db, 1_000_000

        async def acquire(owner: str, wanted: int, at: int = now, cap: int = 3) -> list[int]:
            async with db.transaction() as tx:
                await cluster.seed_slots(tx, ORIGIN, cap)
                return await cluster.acquire_slots(
                    tx,
                    owner=owner,
                    origin=ORIGIN,
                    cap=cap,
                    wanted=wanted,
                    now_ms=at,
                    lease_ms=LEASE,
                )

        assert await acquire("a", 2) == [0, 1]
        assert await acquire("b", 5) == [2]  # what is left of the cap
        assert await acquire("c", 1) == []
        async with db.transaction() as tx:  # another host has slots of its own
            await cluster.seed_slots(tx, "https://other:443", 3)
            got = await cluster.acquire_slots(
                tx,
                owner="c",
                origin="https://other:443",
                cap=3,
                wanted=1,
                now_ms=now,
                lease_ms=LEASE,
            )
        assert got == [0]

        # a releases one; a release of a slot it does not hold changes nothing
        async with db.transaction() as tx:
            await cluster.release_slots(tx, owner="a", slots=[(ORIGIN, 1), (ORIGIN, 2)])
        assert await acquire("c", 5) == [1]

        # a renews what it holds; b does not (it died): after b's lease, its slot is free
        later = now + LEASE - 1
        async with db.transaction() as tx:
            kept = await cluster.renew_slots(tx, owner="a", now_ms=later, lease_ms=LEASE)
        assert kept == {(ORIGIN, 0)}
        async with db.transaction() as tx:
            kept = await cluster.renew_slots(tx, owner="c", now_ms=later, lease_ms=LEASE)
        assert kept == {(ORIGIN, 1), ("https://other:443", 0)}
        assert await acquire("d", 5, at=now + LEASE) == [2]
        async with db.transaction() as tx:  # b's renewal comes too late: nothing is its own
            assert (
                await cluster.renew_slots(tx, owner="b", now_ms=now + LEASE, lease_ms=LEASE)
                == set()
            )
        assert await acquire("d", 5, at=now + LEASE) == []  # a renewed, c holds 1

        # shutdown: every slot of an owner back at once
        await cluster.release_all_slots(db, owner="a")
        assert await acquire("e", 5, at=now + LEASE) == [0]


async def test_start_slots_are_reserved_in_batches_on_one_schedule(
    tmp_path: Path, database_url: str
) -> None:
    async with bare_context(tmp_path, database_url) as ctx:
        now, second = 5_000_000_000, 1_000_000

        async def reserve(sub: str, wanted: int, at: int = now) -> tuple[int, int]:
            async with ctx.db.transaction() as tx:
                return await cluster.reserve_starts(
                    tx,
                    subscription_id=sub,
                    wanted=wanted,
                    interval_us=100_000,  # 10/s
                    now_us=at,
                    horizon_us=2 * second,
                )

        # a first batch starts now; the next one (another process) goes on after it
        assert await reserve("s", 4) == (now, 4)
        assert await reserve("s", 3) == (now + 400_000, 3)
        # never beyond the horizon: 2 s ahead holds slots 0..20, 7 are taken
        assert await reserve("s", 50) == (now + 700_000, 14)
        # full: nothing granted, and when the next free slot would be
        assert await reserve("s", 1) == (now + 2_100_000, 0)
        # time passes: the schedule goes on where it is, later from now when it fell behind
        assert await reserve("s", 1, at=now + second) == (now + 2_100_000, 1)
        assert await reserve("s", 2, at=now + 10 * second) == (now + 10 * second, 2)
        # each subscription has a schedule of its own
        assert await reserve("t", 1) == (now, 1)
