"""Statements whose spelling depends on the database, built once per dialect.

Building and hashing a SQLAlchemy statement costs several times what SQLite takes to run it,
so hot statements are built once. Most are portable and built at import; the few that the
dialect spells (insert-or-ignore, upsert) are built on first use for each dialect by
`prebuilt(build)`, and the same object is handed back afterwards. A statement with an IN list
as long as its caller's values is rendered to the driver's SQL once per dialect and length by
`per_length(build)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy.engine import Dialect as SQLDialect
from sqlalchemy.sql import ClauseElement

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


class per_length:  # lower case, like `prebuilt`: SQL = per_length(build)
    """`per_length(build)(dialect, count)`: the driver's SQL of `build(count)`, a statement
    with `count` parameters in an IN list, rendered once per dialect and count. Run with the
    values in the statement's order, it skips SQLAlchemy's rendering of an expanding IN list
    each time."""

    __slots__ = ("_build", "_sql")

    def __init__(self, build: Callable[[int], ClauseElement]) -> None:
        self._build = build
        self._sql: dict[tuple[str, int], str] = {}

    def __call__(self, dialect: SQLDialect, count: int) -> str:
        key = (dialect.name, count)
        sql = self._sql.get(key)
        if sql is None:
            sql = self._sql[key] = str(self._build(count).compile(dialect=dialect))
        return sql
