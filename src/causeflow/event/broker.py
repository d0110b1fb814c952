"""Wake-ups for readers of the log: after a commit, and from other processes via LISTEN.

The broker carries no events, only "tenant T has something new": readers then read the log
after their own cursor, so a lost or collapsed wake-up can delay but never lose an event (and a
slow poll behind every reader covers a dropped LISTEN connection).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any

from causeflow.db.dialect import NOTIFY_CHANNEL
from causeflow.db.engine import Database
from causeflow.db.listen import ChannelListener, channel_listener
from causeflow.metrics import EVENTS_APPENDED

log = logging.getLogger("causeflow.broker")

Listener = Callable[[str], None]


@functools.lru_cache(maxsize=256)  # the catalog's types: a child per type, looked up once
def _appended_counter(event_type: str) -> Any:
    return EVENTS_APPENDED.labels(event_type)


class Broker:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._listener: ChannelListener | None = None

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
        counts: dict[str, int] = {}
        tenants: dict[str, None] = {}
        for tenant_id, _, event_type in appended:
            counts[event_type] = counts.get(event_type, 0) + 1
            tenants[tenant_id] = None
        for event_type, count in counts.items():
            _appended_counter(event_type).inc(count)
        for tenant_id in tenants:
            self.publish(tenant_id)

    async def start_listening(self, db: Database) -> None:
        """Hear other processes' commits (PostgreSQL; nothing to hear with SQLite's one
        process). The listener reconnects by itself and wakes every reader when it does."""
        self._listener = channel_listener(
            db, NOTIFY_CHANNEL, self.publish, on_connect=lambda: self.publish("*")
        )
        if self._listener is not None:
            self._listener.start()

    @property
    def connected(self) -> bool:
        return self._listener is not None and self._listener.connected

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
