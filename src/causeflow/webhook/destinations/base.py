from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import yarl


@dataclass(frozen=True, slots=True)
class Target:
    url: yarl.URL  # the destination's URL with its credentials (already unsealed)
    address: str  # the IP address to connect to, already vetted by the SSRF rules
    options: Mapping[str, Any]  # the type's validated settings (Options(...).model_dump())


class Publisher(Protocol):
    async def publish(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Return only once the broker has acknowledged; raise BrokerError (or any exception)
        otherwise."""

    async def close(self) -> None: ...


class BrokerError(Exception):
    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused
