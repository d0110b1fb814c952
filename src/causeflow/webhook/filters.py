"""A subscription's `data` filter: its grammar, checked once, and the match, run per event. Pure.

A filter is an object of conditions that must all hold. Each key names a field of the event's
`data`; a dot walks into nested objects (`labels.team` is `data["labels"]["team"]`). Each value
is one of:

- a JSON scalar: the field equals it;
- a non-empty list of scalars: the field equals one of them;
- an object of operators, all of which must hold:
  `eq` (scalar), `in` (list of scalars), `exists` (boolean: the field is there, or is not),
  `prefix` (string: the field is a string that starts with it), `gt`, `gte`, `lt`, `lte`
  (number: the field is a number, not a boolean, and compares so).

A field that is absent fails every condition except `{"exists": false}`. Equality is JSON
equality, except that `true` never equals `1` (Python would say it does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard, cast

from causeflow.errors import ValidationFailed
from causeflow.jsonutil import INT_MAX, INT_MIN, dumps_str

MAX_FILTER_KEYS = 20
MAX_FILTER_VALUES = 100
MAX_KEY_LENGTH = 100  # characters of the whole dotted key
MAX_KEY_DEPTH = 5  # segments of a dotted key
MAX_PREFIX_LENGTH = 1000

COMPARISONS = ("gt", "gte", "lt", "lte")
OPERATORS = ("eq", "in", "exists", "prefix", *COMPARISONS)

_Scalar = str | int | float | bool | None
_MISSING = object()
_INT_RANGE = "integers must be within the signed 64-bit range (-2^63 to 2^63-1)"


class _Bad(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, message


def _storable(value: object) -> bool:
    """An integer beyond 64 bits (an in-process caller can pass one) cannot be stored as JSON."""
    return not isinstance(value, int) or INT_MIN <= value <= INT_MAX


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_scalar(path: str, value: object) -> None:
    if not isinstance(value, _Scalar):
        raise _Bad(path, "a JSON scalar, a list of them or an operator object")
    if not _storable(value):
        raise _Bad(path, _INT_RANGE)


def _check_list(path: str, values: object) -> None:
    if not isinstance(values, list) or not values or len(values) > MAX_FILTER_VALUES:
        raise _Bad(path, f"a list of 1 to {MAX_FILTER_VALUES} values")
    for value in values:
        if not isinstance(value, _Scalar):
            raise _Bad(path, "list values must be JSON scalars")
        if not _storable(value):
            raise _Bad(path, _INT_RANGE)


def _check_operator(path: str, name: str, operand: object) -> None:
    if name == "eq":
        _check_scalar(path, operand)
    elif name == "in":
        _check_list(path, operand)
    elif name == "exists":
        if not isinstance(operand, bool):
            raise _Bad(path, "exists takes true or false")
    elif name == "prefix":
        if not isinstance(operand, str) or not operand or len(operand) > MAX_PREFIX_LENGTH:
            raise _Bad(path, f"prefix takes a string of 1 to {MAX_PREFIX_LENGTH} characters")
    elif name in COMPARISONS:
        if not _is_number(operand) or not _storable(operand):
            raise _Bad(path, f"{name} takes a number")
    else:
        raise _Bad(path, f"unknown operator; one of {', '.join(OPERATORS)}")


def _check_key(path: str, key: object) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise _Bad(path, f"a field name of 1 to {MAX_KEY_LENGTH} characters")
    segments = key.split(".")
    if len(segments) > MAX_KEY_DEPTH or not all(segments):
        raise _Bad(path, f"dot-separated names, at most {MAX_KEY_DEPTH} deep, none empty")


def _check_condition(path: str, wanted: object) -> None:
    if isinstance(wanted, list):
        _check_list(path, wanted)
    elif isinstance(wanted, dict):
        if not wanted:
            raise _Bad(path, "an operator object needs at least one operator")
        for name, operand in wanted.items():
            _check_operator(f"{path}.{name}", name, operand)
    else:
        _check_scalar(path, wanted)


def check_filter(filter_: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The filter as stored, or `ValidationFailed` naming every offending `filter.<key>` path."""
    if not filter_:
        return None
    if len(filter_) > MAX_FILTER_KEYS:
        raise ValidationFailed.at("filter", f"at most {MAX_FILTER_KEYS} fields")
    errors: list[dict[str, str]] = []
    for key, wanted in filter_.items():
        path = f"filter.{key}"
        try:
            _check_key(path, key)
            _check_condition(path, wanted)
        except _Bad as bad:
            errors.append({"path": bad.path, "message": bad.message})
    if errors:
        raise ValidationFailed(errors[0]["message"], details={"errors": errors})
    return dict(filter_)


def check_key(field: str, key: str | None) -> str | None:
    """A dotted key as a filter's (an ordering key), or `ValidationFailed` at `field`."""
    if key is None:
        return None
    try:
        _check_key(field, key)
    except _Bad as bad:
        raise ValidationFailed.at(bad.path, bad.message) from None
    return key


def lane_of(data: Mapping[str, Any], key: str) -> str | None:
    """The ordering lane of an event: the JSON text of its value at `key`; None when absent."""
    value = lookup(data, key)
    return None if value is _MISSING else dumps_str(value)


def lookup(data: Mapping[str, Any], key: str) -> object:
    """The value at a dotted key, or `_MISSING`."""
    value: object = data
    for segment in key.split("."):
        if not isinstance(value, dict) or segment not in value:
            return _MISSING
        value = value[segment]
    return value


def _same(value: object, wanted: object) -> bool:
    """JSON equality: a boolean equals only a boolean (Python has `True == 1`)."""
    if isinstance(value, bool) or isinstance(wanted, bool):
        return isinstance(value, bool) and isinstance(wanted, bool) and value == wanted
    return value == wanted


def _one_of(value: object, wanted: list[Any]) -> bool:
    return any(_same(value, w) for w in wanted)


def _operator_holds(name: str, operand: Any, value: object) -> bool:
    if name == "exists":
        return (value is not _MISSING) is operand
    if value is _MISSING:
        return False
    if name == "eq":
        return _same(value, operand)
    if name == "in":
        return _one_of(value, operand)
    if name == "prefix":
        return isinstance(value, str) and value.startswith(operand)
    if not _is_number(value):
        return False
    bound = cast(int | float, operand)  # the grammar admits only a number here
    if name == "gt":
        return value > bound
    if name == "gte":
        return value >= bound
    if name == "lt":
        return value < bound
    return value <= bound  # lte: the grammar admits nothing else


def holds(wanted: Any, value: object) -> bool:
    """Whether one key's condition holds for the value found there (`_MISSING` if none)."""
    if isinstance(wanted, dict):
        return all(_operator_holds(name, operand, value) for name, operand in wanted.items())
    if value is _MISSING:
        return False
    if isinstance(wanted, list):
        return _one_of(value, wanted)
    return _same(value, wanted)


def filter_matches(filter_: Mapping[str, Any] | None, data: Mapping[str, Any]) -> bool:
    """Every condition of a checked filter holds for the event's `data`."""
    if not filter_:
        return True
    return all(holds(wanted, lookup(data, key)) for key, wanted in filter_.items())
