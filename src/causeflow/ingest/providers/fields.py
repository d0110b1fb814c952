"""Defensive readers for untrusted JSON documents and headers, shared by every provider.

Every provider reads attacker-controlled JSON, so no parser indexes a document directly: these
helpers return None for absent or wrongly-typed optional fields and raise InvalidPayload (never
KeyError, TypeError or AttributeError) for required ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from causeflow.ingest.providers.errors import InvalidPayload
from causeflow.jsonutil import JsonRefused, loads_body

T = TypeVar("T")

MAX_TITLE_LENGTH = 1024

# A Go zero time (Alertmanager's endsAt for a firing alert) and similar placeholders.
_MIN_REAL_YEAR = 1971


def load_object(body: bytes | str, what: str = "body") -> dict[str, Any]:
    """Decode a JSON object or raise InvalidPayload saying why not (by the rules every request
    body follows, `jsonutil.loads_body`)."""
    if isinstance(body, str):
        body = body.encode("utf-8", "replace")
    if not bytes(body).strip():
        raise InvalidPayload(f"{what} is empty")
    try:
        doc = loads_body(body)
    except JsonRefused as exc:
        raise InvalidPayload(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise InvalidPayload(f"{what} must be a JSON object, not {json_type(doc)}")
    return doc


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def scalar(value: object) -> str | None:
    """A JSON scalar as a stripped non-empty string (numbers included), else None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float):
        return str(value)
    return None


def opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    """The field as a non-empty string; numbers are accepted (ids), booleans are not."""
    value = obj.get(key)
    if isinstance(value, bool):
        return None
    return scalar(value)


def req_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    """The field as a non-empty string, or InvalidPayload naming the path."""
    value = opt_str(obj, key)
    if value is None:
        raise InvalidPayload(f"{where}{key} is required and must be a non-empty string or number")
    return value


def opt_obj(obj: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """The field if it is a JSON object, else None."""
    value = obj.get(key)
    return value if isinstance(value, dict) else None


def req_obj(obj: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    """The field as a JSON object, or InvalidPayload naming the path and what was found."""
    value = obj.get(key)
    if not isinstance(value, dict):
        raise InvalidPayload(f"{where}{key} must be an object, not {json_type(value)}")
    return value


def opt_list(obj: Mapping[str, Any], key: str) -> list[Any]:
    """The field if it is a JSON array, else an empty list."""
    value = obj.get(key)
    return value if isinstance(value, list) else []


def str_list(value: object) -> list[str]:
    """The scalar members of an array (or a lone scalar) as strings."""
    items: Iterable[object] = value if isinstance(value, list) else [value]
    return [text for text in (scalar(item) for item in items) if text is not None]


def first_str(value: object) -> str | None:
    """A string, or the first string of an array of them."""
    found = str_list(value)
    return found[0] if found else None


def str_map(value: object) -> dict[str, str]:
    """An object's scalar members as a string-to-string map; anything else is dropped."""
    if not isinstance(value, dict):
        return {}
    out: dict[str, str] = {}
    for key, item in value.items():
        text = scalar(item)
        if text is not None and str(key).strip():
            out[str(key).strip()] = text
    return out


def lookup(table: Mapping[str, T], value: str | None) -> T | None:
    """Case-insensitive lookup in a table whose keys are lower case."""
    if value is None:
        return None
    return table.get(value.strip().lower())


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's stripped value, or None when absent or blank (keys are lower case)."""
    value = headers.get(name)
    if value is None:
        # Callers are meant to pass lower-case keys; tolerate a mapping that kept the wire case.
        wanted = name.lower()
        for key, item in headers.items():
            if isinstance(key, str) and key.lower() == wanted:
                value = item
                break
    if not isinstance(value, str):
        return None
    return value.strip() or None


def title_text(value: str | None, fallback: str) -> str:
    """A one-line, bounded title; the fallback when the sender gave none."""
    text = " ".join((value or "").split()) or fallback
    return text[:MAX_TITLE_LENGTH]


def to_rfc3339(value: object) -> str | None:
    """An ISO 8601 string or a Unix time (seconds or milliseconds) as RFC 3339 UTC with ms.

    Unreadable values and zero times (`0001-01-01T00:00:00Z`) give None: a timestamp is a hint,
    never a reason to refuse an alert.
    """
    moment: datetime | None = None
    try:
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
            value = float(value.strip())
        if isinstance(value, int | float):
            seconds = float(value)
            if abs(seconds) >= 1e11:  # milliseconds since the epoch (Datadog, New Relic)
                seconds /= 1000.0
            moment = datetime.fromtimestamp(seconds, tz=UTC)
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value.strip())
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    if moment is None or moment.year < _MIN_REAL_YEAR:
        return None
    try:
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
