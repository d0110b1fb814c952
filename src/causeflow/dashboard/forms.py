"""Pure conversions between the dashboard's form fields and the API's JSON shapes.

Headers are edited as `Name: value` lines, filters as a JSON object, times as
`datetime-local` values taken as UTC. Errors are `FormError` with a message for the page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from causeflow.jsonutil import JsonRefused, loads_body

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class FormError(ValueError):
    """A field the user typed cannot be turned into what the API takes."""


def parse_headers(text: str) -> dict[str, str] | None:
    """`Name: value` per line -> dict; blank -> None (no extra headers)."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise FormError(f"headers, line {number}: write it as 'Name: value'")
        out[name.strip()] = value.strip()
    return out or None


def format_headers(headers: dict[str, str] | None) -> str:
    return "\n".join(f"{k}: {v}" for k, v in (headers or {}).items())


def parse_filter(text: str) -> dict[str, Any] | None:
    """A JSON object of `data` fields to values (or lists of values); blank -> None."""
    if not text.strip():
        return None
    try:
        value = loads_body(text)  # the rules of every JSON body the API reads
    except JsonRefused as exc:
        raise FormError(f"filter: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise FormError('filter: write a JSON object, e.g. {"severity": ["critical"]}')
    return value or None


def format_filter(value: dict[str, Any] | None) -> str:
    if not value:
        return ""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def parse_events(chosen: list[str], known: tuple[str, ...]) -> list[str]:
    """The ticked event types; `*` alone when it is ticked. Unknown names are left to the API."""
    picked = [c.strip() for c in chosen if c.strip()]
    if "*" in picked:
        return ["*"]
    if not picked:
        raise FormError("events: tick at least one event type (or all events)")
    order = {name: i for i, name in enumerate(known)}
    return sorted(dict.fromkeys(picked), key=lambda n: (order.get(n, len(order)), n))


def local_to_rfc3339(value: str) -> str:
    """A `datetime-local` value (`2026-11-27T08:42`, seconds optional), as UTC RFC 3339."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise FormError(f"not a date and time: {text!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"


def ms_to_local(ms: int) -> str:
    """Epoch ms -> a `datetime-local` value in UTC, to minutes."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M")


def id_time_ms(value: str) -> int | None:
    """The creation time in a prefixed ULID id (`evt_01J…`), or None if it is not one."""
    _, _, body = value.partition("_")
    if len(body) != 26:
        return None
    ms = 0
    for char in body[:10].upper():
        digit = _CROCKFORD.find(char)
        if digit < 0:
            return None
        ms = ms * 32 + digit
    return ms


# Each broker type's option fields, in the order the forms show them (docs/destinations.md).
# The form names them `<type>.<field>`; the API checks the values, the form only shapes them.
DESTINATION_FIELDS: dict[str, tuple[str, ...]] = {
    "redis": ("stream", "maxLen"),
    "nats": ("subject", "stream"),
    "rabbitmq": ("exchange", "routingKey"),
    "mqtt": ("topic", "qos"),
}
DESTINATION_TYPES = ("webhook", *DESTINATION_FIELDS)
_INTEGER_OPTIONS = frozenset({"maxLen", "qos"})
_KEEP_BLANK = frozenset({"exchange", "routingKey"})  # "" is RabbitMQ's default exchange


def parse_destination(type_: str, fields: dict[str, str]) -> tuple[str, dict[str, Any] | None]:
    """The chosen type and its `<type>.<field>` values -> (type, options) for the API.

    Blank optional fields are left out; a whole number becomes an int; anything else is sent
    as typed, so the API's own validation names the field that is wrong. A type the form does
    not know is sent too (the API refuses it)."""
    chosen = type_.strip() or "webhook"
    names = DESTINATION_FIELDS.get(chosen)
    if names is None:
        return chosen, None
    options: dict[str, Any] = {}
    for name in names:
        raw = fields.get(f"{chosen}.{name}", "")
        value = raw if name in _KEEP_BLANK else raw.strip()
        if not value and name not in _KEEP_BLANK:
            continue
        options[name] = int(value) if name in _INTEGER_OPTIONS and value.isdigit() else value
    return chosen, options


def format_destination(type_: str, options: dict[str, Any] | None) -> dict[str, str]:
    """A subscription's options as the form's `<type>.<field>` text values."""
    names = DESTINATION_FIELDS.get(type_, ())
    given = options or {}
    return {f"{type_}.{n}": "" if given.get(n) is None else str(given[n]) for n in names}
