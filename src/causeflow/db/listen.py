"""Notifications from other processes: a LISTEN connection that reconnects by itself.

The database layer's half of the wake-ups: `Dialect.notify` sends inside a transaction (heard
only once it commits), and `ChannelListener` hears them. Only a database shared by several
processes has a connection to listen on (`Dialect.listen_dsn`); with SQLite there is one
process and `channel_listener` gives None.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from causeflow.db.engine import Database

log = logging.getLogger("causeflow.broker")


class ChannelListener:
    """LISTEN on one channel: `on_notify(payload)` per notification, `on_connect()` after each
    (re)connection (something may have been committed while nobody was listening)."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        on_notify: Callable[[str], None],
        on_connect: Callable[[], None],
    ) -> None:
        self._dsn = dsn
        self._channel = channel
        self._on_notify = on_notify
        self._on_connect = on_connect
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.connected = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever())

    async def _listen_forever(self) -> None:
        import asyncpg

        delay = 0.2
        while not self._stopping.is_set():
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=5)
                await conn.add_listener(
                    self._channel, lambda _c, _pid, _ch, payload: self._on_notify(payload)
                )
                self.connected = True
                delay = 0.2
                self._on_connect()
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


def channel_listener(
    db: Database,
    channel: str,
    on_notify: Callable[[str], None],
    on_connect: Callable[[], None],
) -> ChannelListener | None:
    """A listener on the database's channel; None when the database has one process."""
    dsn = db.dialect.listen_dsn(db.url)
    if dsn is None:
        return None
    return ChannelListener(dsn, channel, on_notify, on_connect)
