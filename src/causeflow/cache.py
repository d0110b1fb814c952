"""A small per-process TTL cache whose misses are single-flight.

Every request authenticates and looks up its tenant's plan; when an entry expires under load,
hundreds of concurrent requests would each go to the database for the same row. Here the first
miss loads it and every concurrent caller for that key awaits the same load. A `drop` after a
change wins over a load already under way: that load's value is not kept.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._data: dict[K, tuple[V, float]] = {}
        self._inflight: dict[K, asyncio.Future[V]] = {}
        # bumped by every drop: a load that began before one read what may have changed since,
        # so its value is returned to its own callers but never kept
        self._generation = 0

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        hit = self._data.get(key)
        if hit is not None and time.monotonic() - hit[1] < self.ttl:
            return hit[0]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        generation = self._generation
        try:
            value = await load()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved here; waiters re-raise it
            raise
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
        if generation == self._generation:
            if len(self._data) >= self.max_entries:
                self._data.clear()
            self._data[key] = (value, time.monotonic())
        future.set_result(value)
        return value

    def peek(self, key: K) -> V | None:
        hit = self._data.get(key)
        return hit[0] if hit is not None else None

    def drop(self, key: K) -> None:
        """Forget `key` (it changed): a load under way is not kept, and the next caller loads
        afresh rather than waiting for it."""
        self._generation += 1
        self._data.pop(key, None)
        self._inflight.pop(key, None)

    def drop_where(self, predicate: Callable[[K, V], bool]) -> None:
        """Forget the entries `predicate` picks, and every load under way (whose values are
        not known yet)."""
        self._generation += 1
        self._inflight.clear()
        for key, (value, _) in list(self._data.items()):
            if predicate(key, value):
                del self._data[key]
