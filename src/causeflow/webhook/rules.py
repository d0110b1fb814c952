"""Pure checks of what a client may configure on a subscription (no I/O).

Each check returns the normalized value or raises `ValidationFailed` naming every offending
field path (`events.1`, `headers.Host`, `filter.severity`, `url`), so one 422 lists all problems
of a field at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from causeflow.clock import parse_rfc3339
from causeflow.errors import ValidationFailed
from causeflow.webhook.schemas import REDACTED
from causeflow.webhook.signing import RESERVED_HEADERS, check_secret, is_header_allowed
from causeflow.webhook.ssrf import IPNetwork, SsrfBlocked, check_url
from causeflow_sdk.models import CATALOG_TYPES, OPERATIONAL_TYPES

KNOWN_TYPES: frozenset[str] = frozenset(CATALOG_TYPES) | frozenset(OPERATIONAL_TYPES)
MAX_HEADERS = 20
MAX_HEADER_VALUE = 4096


def _fail(errors: list[dict[str, str]]) -> ValidationFailed:
    return ValidationFailed(errors[0]["message"], details={"errors": errors})


def _pattern_types(pattern: str) -> frozenset[str]:
    """The known types a `family.*` pattern stands for (its prefix, dot included)."""
    prefix = pattern[:-1]
    return frozenset(t for t in KNOWN_TYPES if t.startswith(prefix))


def is_pattern(name: str) -> bool:
    return name.endswith(".*") and len(name) > 2


def expand_events(events: Sequence[str]) -> frozenset[str]:
    """The exact types a checked `events` list matches; `{"*"}` for every type.

    The set of types is closed (the catalog and the operational types), so a pattern is
    expanded once, when the subscription is loaded, and matching stays one set lookup.
    """
    if "*" in events:
        return frozenset({"*"})
    out: set[str] = set()
    for name in events:
        if is_pattern(name):
            out |= _pattern_types(name)
        else:
            out.add(name)
    return frozenset(out)


def _event_error(name: str) -> str | None:
    if is_pattern(name):
        if "*" in name[:-2] or not _pattern_types(name):
            return f"the pattern {name!r} matches no event type"
        return None
    if name not in KNOWN_TYPES:
        return f"unknown event type {name!r}"
    return None


def check_events(events: Sequence[str], field: str = "events") -> list[str]:
    """Catalog or operational names, `family.*` patterns that match some type, or exactly
    `["*"]`; duplicates dropped, order kept. `field` names the list in error paths."""
    if "*" in events:
        if len(events) != 1:
            raise ValidationFailed.at(field, '"*" stands alone: it already means every type')
        return ["*"]
    errors = [
        {"path": f"{field}.{i}", "message": message}
        for i, name in enumerate(events)
        if (message := _event_error(name)) is not None
    ]
    if errors:
        raise _fail(errors)
    return list(dict.fromkeys(events))


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


@dataclass(frozen=True, slots=True)
class Selection:
    """What a recover or replay reaches: a window of creation times (inclusive epoch ms),
    optionally only some event types (exact, never `*`) and one incident's events."""

    since_ms: int
    until_ms: int
    types: frozenset[str] | None = None
    incident_id: str | None = None


def parse_selection(
    since: str,
    until: str | None,
    event_types: Sequence[str] | None,
    incident_id: str | None,
    now_ms: int,
    *,
    max_ms: int,
) -> Selection:
    """The body of a recover or replay: the window, then `eventTypes` (names or patterns)."""
    start, end = parse_window(since, until, now_ms, max_ms=max_ms)
    types = None
    if event_types is not None:
        expanded = expand_events(check_events(event_types, "eventTypes"))
        types = None if "*" in expanded else expanded
    return Selection(start, end, types, incident_id)


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
    if end < start and until is None:
        raise ValidationFailed.at("since", "since is in the future (until defaults to now)")
    if end < start:
        raise ValidationFailed.at("until", "until is before since")
    if end - start > max_ms:
        raise ValidationFailed.at(
            "until" if until is not None else "since",
            f"the window is at most {_duration(max_ms / 1000)}",
        )
    return start, end
