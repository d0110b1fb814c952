"""What a long-running part of a process is: a `Component` that starts and returns its `Stop`.

Each feature builds its own components; which of them a process runs is decided by role in the
composition root (`causeflow.roles`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from causeflow.context import AppContext

Stop = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Component:
    name: str
    roles: frozenset[str]
    start: Callable[[AppContext], Awaitable[Stop]]
