"""Concurrent writes of one kind stored together: one transaction per burst instead of one each.

A `Batcher` queues the items its callers submit; one task at a time takes everything queued
meanwhile (at most `max_batch`) and hands it to `apply(tx, items)` in one transaction, which
must return one result per item, in order, with the outcome each would have had alone in that
order. Every caller returns only after the commit. A batch whose transaction fails is retried
item by item, each in its own transaction, so an item the database (or a rule) refuses fails
alone; an exception in `retry_on` means "apply the same batch again" (a race another writer won).
A caller that goes away does not take its item out of a batch already queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Generic, TypeVar

from causeflow.db.engine import Tx

log = logging.getLogger("causeflow.db")

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 64  # items per transaction: bounds how long one batch holds the writer
RETRIES = 3


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


class Batcher(Generic[T, R]):
    def __init__(
        self,
        name: str,
        transaction: Callable[[], AbstractAsyncContextManager[Tx]],
        apply: Callable[[Tx, list[T]], Awaitable[list[R]]],
        *,
        max_batch: int = MAX_BATCH,
        retry_on: tuple[type[Exception], ...] = (),
    ) -> None:
        self.name = name
        self._transaction = transaction
        self._apply_in = apply
        self._max = max_batch
        self._retry_on = retry_on
        self._queue: list[_Waiting[T, R]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions committed (observability and tests)

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        # A caller that went away never reads its failure: mark it read, so it is not logged
        # as an exception nobody retrieved (a caller still waiting gets it raised as usual).
        future.add_done_callback(_mark_retrieved)
        self._queue.append(_Waiting(item, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain(), name=f"{self.name}-batches")
        # Shielded: a caller that goes away does not take the batch's transaction with it.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                try:
                    results = await self._apply([w.item for w in batch])
                except Exception as exc:  # noqa: BLE001  # retried one by one: only the culprit fails
                    if len(batch) == 1:
                        _settle(batch[0].future, exc=exc)
                        continue
                    log.info("a %s batch failed; storing its items one by one", self.name)
                    for waiting in batch:
                        try:
                            (result,) = await self._apply([waiting.item])
                        except Exception as exc:  # noqa: BLE001  # handed to its caller
                            _settle(waiting.future, exc=exc)
                        else:
                            _settle(waiting.future, result=result)
                else:
                    for waiting, result in zip(batch, results, strict=True):
                        _settle(waiting.future, result=result)
        finally:
            self._drainer = None

    async def _apply(self, batch: list[T]) -> list[R]:
        for attempt in range(RETRIES):
            try:
                async with self._transaction() as tx:
                    results = await self._apply_in(tx, batch)
            except self._retry_on:
                if attempt == RETRIES - 1:
                    raise
                continue
            self.batches += 1
            return results
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._drainer is not None:
            await asyncio.shield(self._drainer)


def _mark_retrieved(future: asyncio.Future[R]) -> None:
    if not future.cancelled():
        future.exception()


def _settle(
    future: asyncio.Future[R], *, result: R | None = None, exc: Exception | None = None
) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]
