"""Query-string values the listing routes share: comma-separated lists and RFC 3339 times.

A malformed time is the client's mistake: a 422 that names the parameter (`query.<name>`)."""

from __future__ import annotations

from causeflow.clock import parse_rfc3339
from causeflow.errors import ValidationFailed


def comma_list(value: str | None) -> frozenset[str] | None:
    """`a, b,,c` -> {a, b, c}; nothing (absent, empty, only commas) -> None, meaning no filter."""
    chosen = frozenset(v.strip() for v in value.split(",") if v.strip()) if value else None
    return chosen or None


def query_time(name: str, value: str | None) -> int | None:
    """An RFC 3339 time as epoch milliseconds, or None when the parameter is absent."""
    try:
        return parse_rfc3339(value) if value else None
    except ValueError as exc:
        raise ValidationFailed.at(f"query.{name}", "not an RFC 3339 time") from exc
