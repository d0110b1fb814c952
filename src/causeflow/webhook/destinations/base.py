"""The interface of a broker destination: what a type's module receives and returns.

Each type's module (`destinations/<type>.py`) exposes `SCHEMES`, `DEFAULT_PORT`, `Options` (its
pydantic settings model) and `async def open_publisher(target, *, timeout) -> Publisher`; the
broker client is imported inside that module only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import yarl


@dataclass(frozen=True, slots=True)
class Target:
    url: yarl.URL  # the destination's URL with its credentials (already unsealed)
    address: str  # the IP address to connect to, already vetted by the SSRF rules
    options: Mapping[str, Any]  # the type's validated settings (its Options model, .model_dump())


class Publisher(Protocol):
    async def publish(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Return only once the broker has acknowledged; raise BrokerError (or any exception)
        otherwise."""

    async def close(self) -> None: ...


class BrokerError(Exception):
    """refused=True when the broker answered and said no (e.g. unroutable, stream full); False
    when it was unreachable."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused
