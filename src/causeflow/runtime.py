"""What a long-running part of a process is: a `Component` that starts and returns its `Stop`.

Each feature builds its own components; which of them a process runs is decided by role in the
composition root (`causeflow.roles`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from causeflow.context import AppContext

Stop = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Component:
    name: str
    roles: frozenset[str]
    start: Callable[[AppContext], Awaitable[Stop]]


async def finish(task: asyncio.Task[None] | None, seconds: float) -> None:
    """Let `task` run to its end for up to `seconds`, else cancel it; either way it is over
    when this returns. Its exception, if any, is not raised here (it logs its own)."""
    if task is None:
        return
    try:
        await asyncio.wait_for(asyncio.shield(task), seconds)
    except (TimeoutError, Exception):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
