"""Keyset pages: `?limit=` (default 20, max 100) and an opaque `?cursor=`.

The cursor encodes the sort key of the last item returned, so a page is stable under concurrent
inserts (no offsets). Responses are `{"items", "cursor", "count"}`.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from causeflow.errors import ValidationFailed
from causeflow.jsonutil import INT_MAX, INT_MIN, dumps, loads

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    cursor: str | None
    count: int


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    if not cursor:
        return None
    try:
        value = loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as exc:
        raise ValidationFailed.at("cursor", "invalid cursor") from exc
    if not isinstance(value, list):
        raise ValidationFailed.at("cursor", "invalid cursor")
    return value


def _holds(value: Any, kind: type) -> bool:
    """A cursor value of the wanted type; an integer also fits a 64-bit column (a forged cursor
    may hold any number, and the databases refuse larger ones with an error, not a miss)."""
    if kind is int:
        return (
            isinstance(value, int) and not isinstance(value, bool) and INT_MIN <= value <= INT_MAX
        )
    return isinstance(value, kind)


class PageParams:
    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=100, description="page size")] = 20,
        cursor: Annotated[str | None, Query(max_length=512, description="opaque cursor")] = None,
    ) -> None:
        self.limit = limit
        self.cursor = cursor
        self.after = decode_cursor(cursor)

    def after_key(self, *types: type) -> list[Any] | None:
        """The decoded cursor, checked to hold one value of each of `types`, in order."""
        if self.after is None:
            return None
        if len(self.after) != len(types) or not all(
            _holds(v, t) for v, t in zip(self.after, types, strict=True)
        ):
            raise ValidationFailed.at("cursor", "invalid cursor")
        return self.after


def page(items: list[Any], limit: int, key: Any) -> dict[str, Any]:
    """Build a page from up to `limit + 1` fetched rows; `key(item)` gives the sort key."""
    more = len(items) > limit
    items = items[:limit]
    cursor = encode_cursor(list(key(items[-1]))) if more and items else None
    return {"items": items, "cursor": cursor, "count": len(items)}


def _page_params_dependency() -> Any:
    from causeflow.api.deps import async_dependency

    return async_dependency(PageParams)


page_params = _page_params_dependency()
