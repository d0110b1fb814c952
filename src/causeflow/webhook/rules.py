"""Pure checks of what a client may configure on a subscription (no I/O).

Each check returns the normalized value or raises `ValidationFailed` naming every offending
field path (`events.1`, `headers.Host`, `filter.severity`, `url`), so one 422 lists all problems
of a field at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from causeflow.clock import parse_rfc3339
from causeflow.errors import ValidationFailed
from causeflow.jsonutil import INT_MAX, INT_MIN
from causeflow.webhook.schemas import REDACTED
from causeflow.webhook.signing import RESERVED_HEADERS, check_secret, is_header_allowed
from causeflow.webhook.ssrf import IPNetwork, SsrfBlocked, check_url
from causeflow_sdk.models import CATALOG_TYPES, OPERATIONAL_TYPES

KNOWN_TYPES: frozenset[str] = frozenset(CATALOG_TYPES) | frozenset(OPERATIONAL_TYPES)
MAX_FILTER_KEYS = 20
MAX_FILTER_VALUES = 100
MAX_HEADERS = 20
MAX_HEADER_VALUE = 4096

_Scalar = str | int | float | bool | None


_INT_RANGE = "integers must be within the signed 64-bit range (-2^63 to 2^63-1)"


def _storable(value: object) -> bool:
    """Whether a filter value can be stored and compared as JSON: integers beyond 64 bits (which
    an in-process caller can pass; request bodies refuse them already) cannot."""
    return not isinstance(value, int) or INT_MIN <= value <= INT_MAX


def _fail(errors: list[dict[str, str]]) -> ValidationFailed:
    return ValidationFailed(errors[0]["message"], details={"errors": errors})


def check_events(events: Sequence[str]) -> list[str]:
    """Catalog or operational names, or exactly `["*"]`; duplicates dropped, order kept."""
    if "*" in events:
        if len(events) != 1:
            raise ValidationFailed.at("events", '"*" stands alone: it already means every type')
        return ["*"]
    errors = [
        {"path": f"events.{i}", "message": f"unknown event type {name!r}"}
        for i, name in enumerate(events)
        if name not in KNOWN_TYPES
    ]
    if errors:
        raise _fail(errors)
    return list(dict.fromkeys(events))


def check_filter(filter_: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`{data field: value or non-empty list of values}`; values are JSON scalars."""
    if not filter_:
        return None
    if len(filter_) > MAX_FILTER_KEYS:
        raise ValidationFailed.at("filter", f"at most {MAX_FILTER_KEYS} fields")
    errors: list[dict[str, str]] = []
    for key, wanted in filter_.items():
        path = f"filter.{key}"
        if not key or len(key) > 100:
            errors.append({"path": path, "message": "a field name of 1 to 100 characters"})
        elif isinstance(wanted, list):
            if not wanted or len(wanted) > MAX_FILTER_VALUES:
                errors.append(
                    {"path": path, "message": f"a list of 1 to {MAX_FILTER_VALUES} values"}
                )
            elif not all(isinstance(v, _Scalar) for v in wanted):
                errors.append({"path": path, "message": "list values must be JSON scalars"})
            elif not all(map(_storable, wanted)):
                errors.append({"path": path, "message": _INT_RANGE})
        elif not isinstance(wanted, _Scalar):
            errors.append({"path": path, "message": "a JSON scalar or a list of them"})
        elif not _storable(wanted):
            errors.append({"path": path, "message": _INT_RANGE})
    if errors:
        raise _fail(errors)
    return dict(filter_)


def check_headers(
    headers: Mapping[str, str] | None, keep_from: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Extra delivery headers; reserved, malformed or case-duplicate names are refused.

    `keep_from` (PATCH): a value equal to `schemas.REDACTED` takes that header's stored value.
    """
    if not headers:
        return {}
    if len(headers) > MAX_HEADERS:
        raise ValidationFailed.at("headers", f"at most {MAX_HEADERS} headers")
    stored = {k.lower(): v for k, v in (keep_from or {}).items()}
    errors: list[dict[str, str]] = []
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in headers.items():
        path = f"headers.{name}"
        if value == REDACTED and keep_from is not None:
            if name.lower() not in stored:
                errors.append({"path": path, "message": "no stored value to keep for this name"})
                continue
            value = stored[name.lower()]
        if name.lower() in RESERVED_HEADERS:
            errors.append({"path": path, "message": "this header is set by the service"})
        elif len(name) > 256 or len(value) > MAX_HEADER_VALUE:
            errors.append({"path": path, "message": "header name or value too long"})
        elif not is_header_allowed(name, value):
            errors.append({"path": path, "message": "not a valid header name or value"})
        elif name.lower() in seen:
            errors.append({"path": path, "message": "the same header name appears twice"})
        else:
            seen.add(name.lower())
            out[name] = value
    if errors:
        raise _fail(errors)
    return out


def check_destination(url: str, *, allow_http: bool, allow: Sequence[IPNetwork]) -> str:
    """The SSRF and scheme rules at create/patch time (a literal refused address is a 422)."""
    try:
        check_url(url, allow_http=allow_http, allow=allow)
    except SsrfBlocked as exc:
        raise ValidationFailed.at("url", f"refused destination: {exc.reason}") from exc
    except ValueError as exc:
        raise ValidationFailed.at("url", str(exc)) from exc
    return url


def check_new_secret(secret: str) -> str:
    try:
        check_secret(secret)
    except ValueError as exc:
        raise ValidationFailed.at("secret", str(exc)) from exc
    return secret


def _duration(seconds: float) -> str:
    """A window length as people say it: `14 days`, `1 hour`, `90 seconds`."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def parse_window(since: str, until: str | None, now_ms: int, *, max_ms: int) -> tuple[int, int]:
    """`{since, until?}` as inclusive epoch-ms bounds; `until` defaults to now. A window longer
    than `max_ms` (`CAUSEFLOW_WEBHOOK_RECOVER_WINDOW_SECONDS`) is refused."""
    try:
        start = parse_rfc3339(since)
    except ValueError as exc:
        raise ValidationFailed.at("since", "not an RFC 3339 time") from exc
    try:
        end = parse_rfc3339(until) if until is not None else now_ms
    except ValueError as exc:
        raise ValidationFailed.at("until", "not an RFC 3339 time") from exc
    if end < start:
        raise ValidationFailed.at("until", "until is before since")
    if end - start > max_ms:
        raise ValidationFailed.at(
            "until" if until is not None else "since",
            f"the window is at most {_duration(max_ms / 1000)}",
        )
    return start, end
