"""What a trigger does with an incoming event: the actions the service runs and the config
they read, as pure functions (no I/O).

Two actions run here; any other action name is stored as given and its events are recorded
with `actionTaken: "unknown_trigger"` (an engine outside the service may act on them).

- `incident_created`: the event becomes one firing alert of the trigger's provider and goes
  through the inbound dedup rules, so it opens an incident or attaches to the one open for its
  (tenant, provider, fingerprint).
- `change_event_published`: the event is a change (a deploy, a config push) of one service; it
  is recorded on every incident of that service that is not resolved or closed.

Config of both (every key optional; a trigger's config is validated when it is created):

    {
      "fields":   {"title": "/workflow_run/name", "service": "/repository/name", ...},
      "defaults": {"severity": "high", "service": "checkout", ...},
      "when":     {"/action": "completed", "/workflow_run/conclusion": ["failure", "timed_out"]}
    }

`fields` maps each value the action uses to a JSON Pointer (RFC 6901) into the incoming event;
a value with no pointer is read from the event's top-level member of the same name. A value the
event lacks (absent, null, an object, an empty string) comes from `defaults`, if there. Numbers
are used as their JSON text. `when`, if given, must hold entirely for the action to run: each
pointer must lead to a value equal to the one given, or to one of a list of them; otherwise the
event is ignored. An event without a title (and, for a change, without a service) is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from causeflow.errors import ValidationFailed
from causeflow.ingest.fingerprint import clamp_fingerprint, stable_hash
from causeflow.ingest.providers.base import SEVERITIES, NormalizedAlert
from causeflow.ingest.providers.custom import DEFAULT_SEVERITY, SEVERITY_MAP
from causeflow.ingest.providers.fields import lookup, title_text

INCIDENT_CREATED = "incident_created"
CHANGE_EVENT_PUBLISHED = "change_event_published"
ACTIONS: tuple[str, ...] = (INCIDENT_CREATED, CHANGE_EVENT_PUBLISHED)

# What `actionTaken` says besides the outcome of a run.
UNKNOWN_TRIGGER = "unknown_trigger"
IGNORED = "ignored"

FIELDS: Mapping[str, tuple[str, ...]] = {
    INCIDENT_CREATED: (
        "title",
        "fingerprint",
        "severity",
        "service",
        "environment",
        "description",
        "url",
    ),
    CHANGE_EVENT_PUBLISHED: ("title", "service", "environment", "description", "url", "id"),
}
CONFIG_KEYS = ("fields", "defaults", "when")
MAX_POINTER = 512
MAX_DEFAULT = 1000
MAX_WHEN = 20
MAX_WHEN_VALUES = 100

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Change:
    """A change of one service, to record on its unresolved incidents."""

    title: str
    service: str
    environment: str | None
    description: str | None
    url: str | None
    change_id: str  # the sender's id of the change, else a hash of title and service
    raw: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """What an incoming event asks for: an alert to apply, a change to record, or nothing."""

    alert: NormalizedAlert | None = None
    change: Change | None = None


# --- config -------------------------------------------------------------------------------------


def _pointer_error(pointer: object) -> str | None:
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        return 'a JSON Pointer into the incoming event, such as "/alert/title"'
    if len(pointer) > MAX_POINTER:
        return f"at most {MAX_POINTER} characters"
    rest = pointer
    while "~" in rest:
        at = rest.index("~")
        if rest[at + 1 : at + 2] not in ("0", "1"):
            return '"~" must be followed by 0 or 1 (RFC 6901 escapes)'
        rest = rest[at + 2 :]
    return None


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def check_config(action: str, config: Mapping[str, Any] | None) -> None:
    """Raise 422 `validation_error` naming every bad path (`config.fields.title`, …) of the
    config of an action the service runs; other actions' configs are not read."""
    if action not in ACTIONS or not config:
        return
    names = FIELDS[action]
    errors: list[dict[str, str]] = []

    def fail(path: str, message: str) -> None:
        errors.append({"path": f"config.{path}", "message": message})

    for key in config:
        if key not in CONFIG_KEYS:
            fail(key, f"unknown setting of {action}; one of {', '.join(CONFIG_KEYS)}")
    fields, defaults, when = config.get("fields"), config.get("defaults"), config.get("when")
    for part, value in (("fields", fields), ("defaults", defaults), ("when", when)):
        if value is not None and not isinstance(value, dict):
            fail(part, "must be an object")
    if isinstance(fields, dict):
        for name, pointer in fields.items():
            if name not in names:
                fail(f"fields.{name}", f"{action} reads {', '.join(names)}")
            elif (problem := _pointer_error(pointer)) is not None:
                fail(f"fields.{name}", problem)
    if isinstance(defaults, dict):
        for name, value in defaults.items():
            if name not in names:
                fail(f"defaults.{name}", f"{action} reads {', '.join(names)}")
            elif not isinstance(value, str) or not value.strip() or len(value) > MAX_DEFAULT:
                fail(f"defaults.{name}", f"a non-empty string of at most {MAX_DEFAULT} characters")
            elif name == "severity" and value not in SEVERITIES:
                fail(f"defaults.{name}", f"one of {', '.join(SEVERITIES)}")
    if isinstance(when, dict):
        if len(when) > MAX_WHEN:
            fail("when", f"at most {MAX_WHEN} conditions")
        for pointer, wanted in when.items():
            if (problem := _pointer_error(pointer)) is not None:
                fail(f"when.{pointer}", problem)
            elif isinstance(wanted, list):
                if not wanted or len(wanted) > MAX_WHEN_VALUES:
                    fail(f"when.{pointer}", f"a list of 1 to {MAX_WHEN_VALUES} values")
                elif not all(_is_scalar(item) for item in wanted):
                    fail(f"when.{pointer}", "values are strings, numbers, booleans or null")
            elif not _is_scalar(wanted):
                fail(f"when.{pointer}", "a string, number, boolean or null, or a list of them")
    if errors:
        raise ValidationFailed(errors[0]["message"], details={"errors": errors})


# --- running ------------------------------------------------------------------------------------

_MISSING = object()


def resolve(document: Any, pointer: str) -> Any:
    """The value at a JSON Pointer, or `_MISSING`."""
    node = document
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            if token not in node:
                return _MISSING
            node = node[token]
        elif isinstance(node, list):
            if not token.isdigit() or (token != "0" and token.startswith("0")):
                return _MISSING
            index = int(token)
            if index >= len(node):
                return _MISSING
            node = node[index]
        else:
            return _MISSING
    return node


def _same(found: Any, wanted: Scalar) -> bool:
    # JSON equality: true is not 1, 1 is 1.0
    if isinstance(found, bool) or isinstance(wanted, bool):
        return isinstance(found, bool) and isinstance(wanted, bool) and found == wanted
    if found is None or wanted is None:
        return found is None and wanted is None
    if isinstance(found, str) or isinstance(wanted, str):
        return isinstance(found, str) and isinstance(wanted, str) and found == wanted
    if isinstance(found, int | float) and isinstance(wanted, int | float):
        return found == wanted
    return False


def matches(config: Mapping[str, Any], document: Mapping[str, Any]) -> bool:
    """Whether every `when` condition holds for the incoming event."""
    for pointer, wanted in (config.get("when") or {}).items():
        found = resolve(document, pointer)
        if found is _MISSING:
            return False
        choices = wanted if isinstance(wanted, list) else [wanted]
        if not any(_same(found, choice) for choice in choices):
            return False
    return True


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        # PostgreSQL text cannot hold NUL, like inbound alert text it becomes U+FFFD
        return value.replace("\x00", "\ufffd").strip() or None
    if isinstance(value, int | float):
        return str(value)
    return None


def values(action: str, config: Mapping[str, Any], document: Mapping[str, Any]) -> dict[str, Any]:
    """Each value the action reads, from its pointer, else the default, else None."""
    fields = config.get("fields") or {}
    defaults = config.get("defaults") or {}
    out: dict[str, str | None] = {}
    for name in FIELDS[action]:
        pointer = fields.get(name, "/" + name)
        found = _text(resolve(document, pointer))
        out[name] = found if found is not None else defaults.get(name)
    return out


def storable(document: dict[str, Any]) -> dict[str, Any]:
    """The event as it can be stored in JSON columns (the event's exact text is kept with the
    trigger's received events). Request bodies are read strictly and hold neither of these,
    but the event is made storable whatever its source: integers beyond 64 bits become floats
    (their digits as a string beyond the range of a double), and unpaired UTF-16 surrogates,
    which no UTF-8 column can hold, become U+FFFD."""
    try:
        orjson.dumps(document)
    except TypeError:
        return _storable(document)  # type: ignore[no-any-return]
    return document


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_INT64 = (-(2**63), 2**63 - 1)


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            return value
        try:
            return float(value)
        except OverflowError:
            pass
        try:
            return str(value)
        except ValueError:  # more digits than Python writes out
            return None
    if isinstance(value, dict):
        return {_storable(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def plan(action: str, config: Mapping[str, Any], document: dict[str, Any]) -> Plan:
    """What the incoming event asks of a trigger whose action is one of ACTIONS."""
    if not matches(config, document):
        return Plan()
    raw = storable(document)
    got = values(action, config, document)
    title = got["title"]
    if title is None:
        return Plan()
    title = title_text(title, "Event")
    service = got["service"]
    if action == INCIDENT_CREATED:
        severity = lookup(SEVERITY_MAP, got["severity"])
        if severity is None:
            fallback = (config.get("defaults") or {}).get("severity")
            severity = fallback if fallback in SEVERITIES else DEFAULT_SEVERITY
        fingerprint = got["fingerprint"] or stable_hash(title, service or "")
        alert = NormalizedAlert(
            fingerprint=clamp_fingerprint(fingerprint),
            status="firing",
            title=title,
            description=got["description"],
            severity=severity,
            service=service,
            environment=got["environment"],
            labels={},
            url=got["url"],
            raw=raw,
        )
        return Plan(alert=alert)
    if service is None:
        return Plan()
    change = Change(
        title=title,
        service=service,
        environment=got["environment"],
        description=got["description"],
        url=got["url"],
        change_id=clamp_fingerprint(got["id"] or stable_hash(title, service)),
        raw=raw,
    )
    return Plan(change=change)
