"""`cache.TtlCache`: a `drop` (after a change was committed) wins over a load that was already
under way when it came: that load's value, read before the change, is not kept, and a caller
arriving after the drop does not wait for it but reads afresh. Otherwise a platform admin's
new limit (or any dropped entry) could be ignored for a whole TTL in the process that made the
change."""

from __future__ import annotations

import asyncio

import pytest

from causeflow.cache import TtlCache

pytestmark = pytest.mark.unit


async def test_a_drop_during_a_load_keeps_nothing_stale() -> None:
    cache: TtlCache[str, str] = TtlCache(60.0)
    release = asyncio.Event()

    async def old_load() -> str:
        await release.wait()
        return "old"  # read before the change committed

    async def new_load() -> str:
        return "new"

    first = asyncio.create_task(cache.get("acme", old_load))
    await asyncio.sleep(0)  # the load is under way
    cache.drop("acme")  # the change has committed
    after = asyncio.create_task(cache.get("acme", new_load))
    await asyncio.sleep(0)
    release.set()
    assert await first == "old"  # the caller that started before the change
    assert await after == "new"  # a caller after the drop reads afresh
    assert await cache.get("acme", new_load) == "new"  # and the stale value was not kept


async def test_loads_are_still_single_flight_and_cached() -> None:
    cache: TtlCache[str, int] = TtlCache(60.0)
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return calls

    assert await asyncio.gather(*(cache.get("k", load) for _ in range(10))) == [1] * 10
    assert await cache.get("k", load) == 1 and calls == 1
    cache.drop("k")
    assert await cache.get("k", load) == 2
