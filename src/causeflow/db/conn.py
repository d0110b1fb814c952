"""The connection type repositories and services take, and the shapes of what it returns.

Reads run on SQLAlchemy's `AsyncConnection`; SQLite write transactions run on the group
commit's synchronous writer behind its awaitable face (`db.group.SyncConnection`); PostgreSQL
write transactions run on an `AsyncConnection` again. `Conn` is what all three offer, so a
repository function reads the same way inside or outside a transaction (`tx.conn`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeAlias

from sqlalchemy.engine import CursorResult, Dialect, Row, ScalarResult
from sqlalchemy.sql import Executable

# A result or row of any number of untyped columns (what a Core `select(table)` yields).
AnyResult: TypeAlias = CursorResult[*tuple[Any, ...]]
AnyRow: TypeAlias = Row[*tuple[Any, ...]]

# Bound parameters of a Core statement: one set, or several for an executemany.
Params: TypeAlias = Mapping[str, Any] | Sequence[Mapping[str, Any]]
# Parameters of a driver-level SQL string, in the driver's own style.
DriverParams: TypeAlias = Sequence[Sequence[Any]] | Sequence[Mapping[str, Any]] | Mapping[str, Any]


class Conn(Protocol):
    """An awaitable SQLAlchemy Core connection: an `AsyncConnection` or the SQLite writer's."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(
        self, statement: Executable, parameters: Params | None = None, /
    ) -> AnyResult: ...

    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None, /
    ) -> Any: ...

    async def scalars(
        self, statement: Executable, parameters: Params | None = None, /
    ) -> ScalarResult[Any]: ...

    async def exec_driver_sql(
        self, statement: str, parameters: DriverParams | None = None, /
    ) -> AnyResult: ...
