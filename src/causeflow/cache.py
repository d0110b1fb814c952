"""A small per-process TTL cache whose misses are single-flight.

Every request authenticates and looks up its tenant's plan; when an entry expires under load,
hundreds of concurrent requests would each go to the database for the same row. Here the first
miss loads it and every concurrent caller for that key awaits the same load.
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

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        hit = self._data.get(key)
        if hit is not None and time.monotonic() - hit[1] < self.ttl:
            return hit[0]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
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
            self._inflight.pop(key, None)
        if len(self._data) >= self.max_entries:
            self._data.clear()
        self._data[key] = (value, time.monotonic())
        future.set_result(value)
        return value

    def peek(self, key: K) -> V | None:
        hit = self._data.get(key)
        return hit[0] if hit is not None else None

    def drop(self, key: K) -> None:
        self._data.pop(key, None)

    def drop_where(self, predicate: Callable[[K, V], bool]) -> None:
        for key, (value, _) in list(self._data.items()):
            if predicate(key, value):
                del self._data[key]
