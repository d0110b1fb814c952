"""Wake-ups for readers of the log: after a commit, and from other processes via LISTEN.

The broker carries no events, only "tenant T has something new": readers then read the log
after their own cursor, so a lost or collapsed wake-up can delay but never lose an event (and a
slow poll behind every reader covers a dropped LISTEN connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from causeflow.db.dialect import NOTIFY_CHANNEL
from causeflow.metrics import EVENTS_APPENDED

log = logging.getLogger("causeflow.broker")

Listener = Callable[[str], None]


class Broker:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.connected = False

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def publish(self, tenant_id: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(tenant_id)
            except Exception:  # a faulty listener must not stop the others
                log.exception("broker listener failed")

    def committed(self, appended: list[tuple[str, int, str]]) -> None:
        """Database commit hook: wake readers of every tenant the transaction appended to."""
        for _tenant, _position, event_type in appended:
            EVENTS_APPENDED.labels(event_type).inc()
        for tenant_id in {t for t, _, _ in appended}:
            self.publish(tenant_id)

    async def start_listening(self, dsn: str) -> None:
        """PostgreSQL: LISTEN for other processes' commits, reconnecting by itself."""
        self._task = asyncio.create_task(self._listen_forever(dsn))

    async def _listen_forever(self, dsn: str) -> None:
        import asyncpg

        delay = 0.2
        while not self._stopping.is_set():
            conn = None
            try:
                conn = await asyncpg.connect(dsn, timeout=5)
                await conn.add_listener(
                    NOTIFY_CHANNEL, lambda _c, _pid, _ch, payload: self.publish(payload)
                )
                self.connected = True
                delay = 0.2
                # Something may have been committed while we were not listening.
                self.publish("*")
                while not self._stopping.is_set() and not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), timeout=5)
                    if not self._stopping.is_set():
                        await conn.execute("SELECT 1", timeout=5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event listener disconnected: %s", exc)
            finally:
                self.connected = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            if not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                delay = min(delay * 2, 5.0)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
