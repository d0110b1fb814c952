"""Statements whose spelling depends on the database, built once per dialect.

Building and hashing a SQLAlchemy statement costs several times what SQLite takes to run it,
so hot statements are built once. Most are portable and built at import; the few that the
dialect spells (insert-or-ignore, upsert) are built on first use for each dialect by
`prebuilt(build)`, and the same object is handed back afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from causeflow.db.dialect import Dialect

T = TypeVar("T")


class prebuilt(Generic[T]):  # lower case: used like a function, STMT = prebuilt(build)
    """`prebuilt(build)(dialect)`: `build(dialect)`, called once per dialect name."""

    __slots__ = ("_build", "_built")

    def __init__(self, build: Callable[[Dialect], T]) -> None:
        self._build = build
        self._built: dict[str, T] = {}

    def __call__(self, dialect: Dialect) -> T:
        stmt = self._built.get(dialect.name)
        if stmt is None:
            stmt = self._built[dialect.name] = self._build(dialect)
        return stmt
