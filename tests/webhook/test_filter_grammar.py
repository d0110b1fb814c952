"""The subscription filter grammar and event-type patterns, from tables: what is accepted, what
is refused with which path, and which events match. Pure; no database."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from causeflow.errors import ValidationFailed
from causeflow.webhook.filters import (
    MAX_KEY_DEPTH,
    MAX_KEY_LENGTH,
    check_filter,
    check_key,
    filter_matches,
    lane_of,
)
from causeflow.webhook.rules import check_events, expand_events, parse_selection

pytestmark = pytest.mark.unit

DATA = {
    "severity": "critical",
    "source": "grafana",
    "count": 7,
    "ratio": 0.5,
    "flag": True,
    "nothing": None,
    "labels": {"team": "payments", "env": {"region": "eu-west-1"}},
    "tags": ["a", "b"],
}

MATCHES: list[tuple[str, dict[str, Any], bool]] = [
    ("scalar equal", {"severity": "critical"}, True),
    ("scalar different", {"severity": "low"}, False),
    ("list contains", {"severity": ["high", "critical"]}, True),
    ("list lacks", {"severity": ["high", "low"]}, False),
    ("absent field never equals", {"missing": "x"}, False),
    ("absent field never in a list", {"missing": ["x", None]}, False),
    ("null equals null", {"nothing": None}, True),
    ("nested key", {"labels.team": "payments"}, True),
    ("nested key, other value", {"labels.team": "search"}, False),
    ("deeper nested key", {"labels.env.region": "eu-west-1"}, True),
    ("path through a scalar", {"severity.x": "critical"}, False),
    ("path through a list", {"tags.0": "a"}, False),
    ("eq operator", {"count": {"eq": 7}}, True),
    ("eq operator, another number", {"count": {"eq": 8}}, False),
    ("eq operator, a smaller number", {"count": {"eq": 6}}, False),
    ("eq operator on a string", {"severity": {"eq": "critical"}}, True),
    ("in operator", {"source": {"in": ["datadog", "grafana"]}}, True),
    ("in operator lacks", {"source": {"in": ["datadog"]}}, False),
    ("exists true, present", {"labels.team": {"exists": True}}, True),
    ("exists true, absent", {"labels.owner": {"exists": True}}, False),
    ("exists false, absent", {"labels.owner": {"exists": False}}, True),
    ("exists false, present", {"severity": {"exists": False}}, False),
    ("exists true, present null", {"nothing": {"exists": True}}, True),
    ("prefix", {"labels.env.region": {"prefix": "eu-"}}, True),
    ("prefix, other", {"labels.env.region": {"prefix": "us-"}}, False),
    ("prefix on a number", {"count": {"prefix": "7"}}, False),
    ("prefix on absent", {"missing": {"prefix": "a"}}, False),
    ("gt", {"count": {"gt": 6}}, True),
    ("gt at the bound", {"count": {"gt": 7}}, False),
    ("gte at the bound", {"count": {"gte": 7}}, True),
    ("gte above", {"count": {"gte": 8}}, False),
    ("lt", {"count": {"lt": 8}}, True),
    ("lt at the bound", {"count": {"lt": 7}}, False),
    ("lte at the bound", {"count": {"lte": 7}}, True),
    ("lte below", {"count": {"lte": 6}}, False),
    ("float comparison", {"ratio": {"gt": 0.25, "lt": 0.75}}, True),
    ("range, one side fails", {"count": {"gte": 1, "lt": 5}}, False),
    ("comparison on a string", {"severity": {"gt": 1}}, False),
    ("comparison on a boolean", {"flag": {"gte": 0}}, False),
    ("comparison on absent", {"missing": {"lt": 10}}, False),
    ("true is not 1", {"flag": 1}, False),
    ("1 is not true", {"count": True}, False),
    ("true in a list of numbers", {"flag": [1, 2]}, False),
    ("true equals true", {"flag": True}, True),
    ("all conditions must hold", {"severity": "critical", "labels.team": "search"}, False),
    ("every condition holds", {"severity": "critical", "labels.team": "payments"}, True),
    ("no filter", {}, True),
]


@pytest.mark.parametrize(("case", "filter_", "expected"), MATCHES, ids=[m[0] for m in MATCHES])
def test_filter_matches(case: str, filter_: dict[str, Any], expected: bool) -> None:
    assert check_filter(filter_) == (filter_ or None)
    assert filter_matches(filter_, DATA) is expected


REFUSED: list[tuple[str, dict[str, Any], list[str]]] = [
    ("unknown operator", {"count": {"between": [1, 2]}}, ["filter.count.between"]),
    ("empty operator object", {"count": {}}, ["filter.count"]),
    ("exists takes a boolean", {"count": {"exists": 1}}, ["filter.count.exists"]),
    ("prefix takes a string", {"count": {"prefix": 7}}, ["filter.count.prefix"]),
    ("empty prefix", {"count": {"prefix": ""}}, ["filter.count.prefix"]),
    ("gt takes a number", {"count": {"gt": "7"}}, ["filter.count.gt"]),
    ("lte refuses a boolean", {"count": {"lte": True}}, ["filter.count.lte"]),
    ("in takes a list", {"count": {"in": 7}}, ["filter.count.in"]),
    ("in takes scalars", {"count": {"in": [[1]]}}, ["filter.count.in"]),
    ("eq takes a scalar", {"count": {"eq": {"a": 1}}}, ["filter.count.eq"]),
    ("empty list", {"count": []}, ["filter.count"]),
    ("list of objects", {"count": [{"a": 1}]}, ["filter.count"]),
    ("empty key", {"": 1}, ["filter."]),
    ("empty segment", {"labels..team": 1}, ["filter.labels..team"]),
    ("trailing dot", {"labels.": 1}, ["filter.labels."]),
    ("too deep", {".".join("abcdef"): 1}, ["filter." + ".".join("abcdef")]),
    ("too long", {"k" * (MAX_KEY_LENGTH + 1): 1}, ["filter." + "k" * (MAX_KEY_LENGTH + 1)]),
    ("integer beyond 64 bits", {"count": 2**63}, ["filter.count"]),
    ("integer beyond 64 bits in gt", {"count": {"gt": -(2**63) - 1}}, ["filter.count.gt"]),
    (
        "every bad key named",
        {"a": {"nope": 1}, "b": "fine", "c": {"gt": "x"}},
        ["filter.a.nope", "filter.c.gt"],
    ),
]


@pytest.mark.parametrize(("case", "filter_", "paths"), REFUSED, ids=[r[0] for r in REFUSED])
def test_filter_refused(case: str, filter_: dict[str, Any], paths: list[str]) -> None:
    with pytest.raises(ValidationFailed) as info:
        check_filter(filter_)
    assert [e["path"] for e in info.value.details["errors"]] == paths


OPERATOR_MESSAGES: list[tuple[dict[str, Any], str, str]] = [
    ({"n": {"exists": 1}}, "filter.n.exists", "exists takes true or false"),
    ({"n": {"exists": None}}, "filter.n.exists", "exists takes true or false"),
    ({"n": {"prefix": 7}}, "filter.n.prefix", "prefix takes a string of 1 to 1000 characters"),
    ({"n": {"prefix": ""}}, "filter.n.prefix", "prefix takes a string of 1 to 1000 characters"),
    (
        {"n": {"prefix": "p" * 1001}},
        "filter.n.prefix",
        "prefix takes a string of 1 to 1000 characters",
    ),
    ({"n": {"gt": "7"}}, "filter.n.gt", "gt takes a number"),
    ({"n": {"gte": None}}, "filter.n.gte", "gte takes a number"),
    ({"n": {"lt": [1]}}, "filter.n.lt", "lt takes a number"),
    ({"n": {"lte": True}}, "filter.n.lte", "lte takes a number"),
    ({"n": {"gt": 2**63}}, "filter.n.gt", "gt takes a number"),
    (
        {"n": {"between": 1}},
        "filter.n.between",
        "unknown operator; one of eq, in, exists, prefix, gt, gte, lt, lte",
    ),
    ({"a.b.c.d.e.f": 1}, "filter.a.b.c.d.e.f", "dot-separated names, at most 5 deep, none empty"),
    ({"a..b": 1}, "filter.a..b", "dot-separated names, at most 5 deep, none empty"),
]


@pytest.mark.parametrize(("filter_", "path", "message"), OPERATOR_MESSAGES)
def test_each_refusal_says_what_the_operator_or_key_takes(
    filter_: dict[str, Any], path: str, message: str
) -> None:
    # equivalent: causeflow.webhook.filters.xǁ_Badǁ__init____mutmut_1 -- the exception's own
    # args are never read: check_filter reports `bad.path` and `bad.message` only.
    with pytest.raises(ValidationFailed) as info:
        check_filter(filter_)
    assert info.value.details["errors"] == [{"path": path, "message": message}]
    assert str(info.value) == message


def test_the_longest_prefix_and_the_deepest_key_are_accepted() -> None:
    kept = {"n": {"prefix": "p" * 1000}, "a.b.c.d.e": {"exists": True}}
    assert check_filter(kept) == kept
    assert filter_matches({"n": {"prefix": "p" * 1000}}, {"n": "p" * 1001})
    assert filter_matches({"a.b.c.d.e": 1}, {"a": {"b": {"c": {"d": {"e": 1}}}}})


def test_filter_bounds_are_inclusive() -> None:
    deepest = ".".join("k" * MAX_KEY_DEPTH)
    longest = "k" * MAX_KEY_LENGTH
    assert check_filter({deepest: 1, longest: 2}) == {deepest: 1, longest: 2}
    assert check_filter({"n": {"gte": 2**63 - 1, "lte": -(2**63)}}) is not None
    with pytest.raises(ValidationFailed):
        check_filter({f"k{i}": i for i in range(21)})
    assert check_filter({f"k{i}": i for i in range(20)}) is not None


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=5)
)
_names = st.text("abcxyz", min_size=1, max_size=3)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(
    data=st.recursive(
        st.dictionaries(_names, _scalars, max_size=3),
        lambda inner: st.dictionaries(_names, st.one_of(_scalars, inner), max_size=3),
        max_leaves=10,
    ),
    probe=st.lists(_names, min_size=1, max_size=MAX_KEY_DEPTH),
)
def test_a_path_matches_exactly_what_is_there(data: dict[str, Any], probe: list[str]) -> None:
    """`exists` says whether the dotted path leads to a value; equality with that value holds,
    and `exists: false` is the negation of `exists: true`."""
    value: Any = data
    present = True
    for name in probe:
        if not isinstance(value, dict) or name not in value:
            present = False
            break
        value = value[name]
    key = ".".join(probe)
    assert filter_matches({key: {"exists": True}}, data) is present
    assert filter_matches({key: {"exists": False}}, data) is not present
    if present and not isinstance(value, dict | list):
        assert filter_matches({key: value}, data)
        assert filter_matches({key: {"in": [value]}}, data)


PATTERNS: list[tuple[list[str], set[str]]] = [
    (["incident.*"], {"incident.created", "incident.status_changed"}),
    (
        ["approval.*", "tenant.created"],
        {"approval.requested", "approval.resolved", "tenant.created"},
    ),
    (["webhook.*"], {"webhook.subscription_disabled", "webhook.delivery_exhausted"}),
    (["incident.*", "incident.created"], {"incident.created", "incident.status_changed"}),
    (["*"], {"*"}),
]


@pytest.mark.parametrize(("events", "expected"), PATTERNS)
def test_event_patterns_expand_to_their_family(events: list[str], expected: set[str]) -> None:
    assert check_events(events) == list(dict.fromkeys(events))
    assert expand_events(events) == expected


BAD_EVENTS: list[tuple[list[str], list[str]]] = [
    (["nothing.*"], ["events.0"]),
    (["incident.created", "incident.nope"], ["events.1"]),
    (["*.created"], ["events.0"]),
    (["incident*"], ["events.0"]),
    ([".*"], ["events.0"]),
    (["inc*.*"], ["events.0"]),
    (["incident.*", "*"], ["events"]),
    (["incident.created.*"], ["events.0"]),
]


@pytest.mark.parametrize(("events", "paths"), BAD_EVENTS)
def test_unknown_names_and_empty_patterns_are_refused(events: list[str], paths: list[str]) -> None:
    with pytest.raises(ValidationFailed) as info:
        check_events(events)
    assert [e["path"] for e in info.value.details["errors"]] == paths


def test_a_selection_expands_its_types_and_names_its_field() -> None:
    now = 10 * 86_400_000
    sel = parse_selection(
        "1970-01-10T00:00:00Z", None, ["incident.*"], "inc_1", now, max_ms=86_400_000
    )
    assert sel.types == {"incident.created", "incident.status_changed"}
    assert sel.incident_id == "inc_1" and sel.until_ms == now
    assert (
        parse_selection("1970-01-10T00:00:00Z", None, ["*"], None, now, max_ms=86_400_000).types
        is None
    )
    with pytest.raises(ValidationFailed) as info:
        parse_selection("1970-01-10T00:00:00Z", None, ["x.*"], None, now, max_ms=86_400_000)
    assert info.value.details["errors"][0]["path"] == "eventTypes.0"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (".*", "unknown event type '.*'"),  # no family before the dot: not a pattern
        ("a.*", "the pattern 'a.*' matches no event type"),  # the shortest pattern
        ("incident*.*", "the pattern 'incident*.*' matches no event type"),
    ],
)
def test_what_counts_as_a_pattern(name: str, message: str) -> None:
    # equivalent: causeflow.webhook.rules.x__event_error__mutmut_3, 5, 6 -- no event type has a
    # "*" in its name, so a pattern with a "*" before its last ".*" matches no type even when
    # the explicit check for one is gone or looks at a different slice.
    # equivalent: causeflow.webhook.rules.x_expand_events__mutmut_1 -- "*" is not a pattern, so
    # without the shortcut the loop keeps it as itself: the result is {"*"} either way.
    with pytest.raises(ValidationFailed) as info:
        check_events([name])
    assert info.value.details["errors"] == [{"path": "events.0", "message": message}]
    assert expand_events(["*"]) == {"*"}


def test_a_selection_keeps_its_window_and_no_types_when_none_are_named() -> None:
    now = 10 * 86_400_000
    sel = parse_selection(
        "1970-01-10T00:00:00Z", "1970-01-10T01:00:00Z", None, None, now, max_ms=86_400_000
    )
    assert (sel.since_ms, sel.until_ms) == (9 * 86_400_000, 9 * 86_400_000 + 3_600_000)
    assert sel.types is None and sel.incident_id is None


@pytest.mark.parametrize(
    ("data", "key", "lane"),
    [
        ({"incidentId": "inc_1"}, "incidentId", '"inc_1"'),
        ({"labels": {"team": "a"}}, "labels.team", '"a"'),
        ({"n": 3}, "n", "3"),
        ({"n": None}, "n", "null"),  # present, null: a lane of its own
        ({"labels": {"team": "a"}}, "labels", '{"team":"a"}'),
        ({}, "incidentId", None),  # absent: the shared lane of events without the key
        ({"labels": "flat"}, "labels.team", None),
    ],
)
def test_the_ordering_lane_is_the_json_of_the_value_at_the_key(
    data: dict[str, Any], key: str, lane: str | None
) -> None:
    assert lane_of(data, key) == lane


def test_an_ordering_key_follows_the_filter_key_rules() -> None:
    assert check_key("orderingKey", None) is None
    assert check_key("orderingKey", "labels.team") == "labels.team"
    for bad in ("", "a..b", "a." * 5 + "a", "k" * (MAX_KEY_LENGTH + 1)):
        with pytest.raises(ValidationFailed) as info:
            check_key("orderingKey", bad)
        assert info.value.details["errors"][0]["path"] == "orderingKey"
