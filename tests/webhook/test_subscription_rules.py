"""What a client may configure on a subscription, from tables of input and expected outcome:
event names, filters, extra headers, destination, secret and recovery windows. Every refusal is
a 422 naming each offending field path, its message the first of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from causeflow.errors import ValidationFailed
from causeflow.jsonutil import INT_MAX, INT_MIN
from causeflow.webhook.filters import MAX_FILTER_KEYS, MAX_FILTER_VALUES, check_filter
from causeflow.webhook.rules import (
    MAX_HEADER_VALUE,
    MAX_HEADERS,
    check_destination,
    check_events,
    check_headers,
    check_new_secret,
    parse_window,
)
from causeflow.webhook.schemas import REDACTED
from causeflow.webhook.ssrf import parse_allow_cidrs
from causeflow_sdk.models import CATALOG_TYPES, OPERATIONAL_TYPES

pytestmark = pytest.mark.unit

# equivalent: causeflow.webhook.rules.x__duration__mutmut_17 -- `seconds / size` and
#   `seconds // size` are equal once `seconds % size == 0` has been checked.

INT_RANGE = "integers must be within the signed 64-bit range (-2^63 to 2^63-1)"
DAY_MS = 86_400_000


def refusal(check: Callable[..., Any], *args: Any, **kwargs: Any) -> list[dict[str, str]]:
    """The errors of the 422 that `check` raises; its message must be the first one's."""
    with pytest.raises(ValidationFailed) as info:
        check(*args, **kwargs)
    error = info.value
    assert (error.status, error.code) == (422, "validation_error")
    assert error.details is not None
    errors: list[dict[str, str]] = error.details["errors"]
    assert error.message == errors[0]["message"]
    return errors


# --- events -----------------------------------------------------------------------------------


def test_every_catalog_and_operational_type_may_be_subscribed() -> None:
    every = [*CATALOG_TYPES, *OPERATIONAL_TYPES]
    assert check_events(every) == every


@pytest.mark.parametrize(
    ("events", "kept"),
    [
        (["*"], ["*"]),
        (["incident.created", "incident.created"], ["incident.created"]),
        (
            ["user.created", "incident.created", "user.created"],
            ["user.created", "incident.created"],
        ),
        ([], []),
    ],
)
def test_events_keep_their_order_without_duplicates(events: list[str], kept: list[str]) -> None:
    assert check_events(events) == kept


def test_the_wildcard_stands_alone() -> None:
    errors = refusal(check_events, ["*", "incident.created"])
    assert errors == [
        {"path": "events", "message": '"*" stands alone: it already means every type'}
    ]


def test_every_unknown_event_type_is_named_with_its_position() -> None:
    errors = refusal(
        check_events, ["incident.created", "nope", "incident.created", "Incident.Created"]
    )
    assert errors == [
        {"path": "events.1", "message": "unknown event type 'nope'"},
        {"path": "events.3", "message": "unknown event type 'Incident.Created'"},
    ]


# --- filter -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filter_",
    [
        {"severity": "critical"},
        {"severity": ["critical", "high"], "count": 3, "ok": True, "ratio": 0.5, "none": None},
        {"k" * 100: 1},
        {"big": INT_MAX, "small": INT_MIN, "both": [INT_MIN, INT_MAX]},
        {f"f{i}": i for i in range(MAX_FILTER_KEYS)},
        {"many": list(range(MAX_FILTER_VALUES))},
    ],
    ids=["scalar", "mixed", "long-key", "int-edges", "max-keys", "max-values"],
)
def test_filters_within_the_limits_are_kept(filter_: dict[str, Any]) -> None:
    assert (MAX_FILTER_KEYS, MAX_FILTER_VALUES) == (20, 100)
    kept = check_filter(filter_)
    assert kept == filter_ and kept is not filter_


@pytest.mark.parametrize("empty", [None, {}])
def test_no_filter_is_none(empty: dict[str, Any] | None) -> None:
    assert check_filter(empty) is None


def test_more_than_20_filter_fields_are_refused() -> None:
    errors = refusal(check_filter, {f"f{i}": i for i in range(21)})
    assert errors == [{"path": "filter", "message": "at most 20 fields"}]


@pytest.mark.parametrize(
    ("key", "wanted", "message"),
    [
        ("", 1, "a field name of 1 to 100 characters"),
        ("k" * 101, 1, "a field name of 1 to 100 characters"),
        ("k", [], "a list of 1 to 100 values"),
        ("k", list(range(101)), "a list of 1 to 100 values"),
        ("k", [1, {"a": 1}], "list values must be JSON scalars"),
        ("k", [1, [2]], "list values must be JSON scalars"),
        ("k", [1, INT_MAX + 1], INT_RANGE),
        ("k", [INT_MIN - 1], INT_RANGE),
        ("k", (1, 2), "a JSON scalar, a list of them or an operator object"),
        ("k", INT_MAX + 1, INT_RANGE),
        ("k", INT_MIN - 1, INT_RANGE),
    ],
)
def test_each_bad_filter_field_says_what_it_should_be(key: str, wanted: Any, message: str) -> None:
    errors = refusal(check_filter, {"fine": 1, key: wanted})
    assert errors == [{"path": f"filter.{key}", "message": message}]


def test_every_bad_filter_field_is_named_at_once() -> None:
    errors = refusal(check_filter, {"a": {}, "ok": 1, "": 2, "b": []})
    assert errors == [
        {"path": "filter.a", "message": "an operator object needs at least one operator"},
        {"path": "filter.", "message": "a field name of 1 to 100 characters"},
        {"path": "filter.b", "message": "a list of 1 to 100 values"},
    ]


# --- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer abc", "X-Team": "core"},
        {"n" * 256: "v"},
        {"X-Long": "v" * 4096},
        {f"X-H{i}": str(i) for i in range(20)},
        {"X-Empty": ""},
    ],
    ids=["two", "long-name", "long-value", "max-count", "empty-value"],
)
def test_headers_within_the_limits_are_kept_as_spelled(headers: dict[str, str]) -> None:
    assert (MAX_HEADERS, MAX_HEADER_VALUE) == (20, 4096)
    assert check_headers(headers) == headers


@pytest.mark.parametrize("empty", [None, {}])
def test_no_headers_are_an_empty_dict(empty: dict[str, str] | None) -> None:
    assert check_headers(empty) == {}


def test_more_than_20_headers_are_refused() -> None:
    errors = refusal(check_headers, {f"X-H{i}": "v" for i in range(21)})
    assert errors == [{"path": "headers", "message": "at most 20 headers"}]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("Host", "evil", "this header is set by the service"),
        ("content-LENGTH", "1", "this header is set by the service"),
        ("X-CauseFlow-Signature", "sha256=0", "this header is set by the service"),
        ("n" * 257, "v", "header name or value too long"),
        ("X-Long", "v" * 4097, "header name or value too long"),
        ("Bad Name", "v", "not a valid header name or value"),
        ("X:Colon", "v", "not a valid header name or value"),
        ("", "v", "not a valid header name or value"),
        ("X-Inject", "a\r\nHost: evil", "not a valid header name or value"),
        ("X-Nul", "a\x00b", "not a valid header name or value"),
    ],
)
def test_each_bad_header_says_why(name: str, value: str, message: str) -> None:
    errors = refusal(check_headers, {"X-Fine": "1", name: value})
    assert errors == [{"path": f"headers.{name}", "message": message}]


@pytest.mark.parametrize("second", ["x-team", "X-TEAM", "x-Team"])
def test_a_header_name_may_appear_once_in_any_case(second: str) -> None:
    errors = refusal(check_headers, {"X-Team": "a", second: "b"})
    assert errors == [
        {"path": f"headers.{second}", "message": "the same header name appears twice"}
    ]


def test_every_bad_header_is_named_at_once() -> None:
    errors = refusal(check_headers, {"Host": "h", "X-Ok": "1", "x-ok": "2", "Bad Name": "v"})
    assert [e["path"] for e in errors] == ["headers.Host", "headers.x-ok", "headers.Bad Name"]


def test_a_redacted_value_keeps_the_stored_one_on_patch() -> None:
    stored = {"X-Token": "secret-1", "X-Team": "core"}
    kept = check_headers({"x-token": REDACTED, "X-Team": "infra"}, keep_from=stored)
    assert kept == {"x-token": "secret-1", "X-Team": "infra"}


@pytest.mark.parametrize("stored", [{}, {"X-Other": "v"}])
def test_a_redacted_value_with_nothing_stored_is_refused(stored: dict[str, str]) -> None:
    errors = refusal(check_headers, {"X-Token": REDACTED, "Host": "x"}, keep_from=stored)
    assert errors == [
        {"path": "headers.X-Token", "message": "no stored value to keep for this name"},
        {"path": "headers.Host", "message": "this header is set by the service"},
    ]


def test_outside_a_patch_the_redaction_marker_is_an_ordinary_value() -> None:
    assert check_headers({"X-Token": REDACTED}) == {"X-Token": REDACTED}


def test_a_kept_value_is_checked_like_a_new_one() -> None:
    errors = refusal(check_headers, {"X-Token": REDACTED}, keep_from={"x-token": "a\nb"})
    assert errors == [{"path": "headers.X-Token", "message": "not a valid header name or value"}]


# --- destination and secret -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allow_http", "allow", "message"),
    [
        ("https://hooks.example.com/x", False, "", None),
        ("http://127.0.0.1:8080/", True, "127.0.0.0/8", None),
        ("https://10.0.0.1/", False, "", "refused destination: 10.0.0.1 is not a public address"),
        ("https://localhost/", False, "", "refused destination: localhost is a loopback name"),
        ("http://hooks.example.com/", False, "", "the URL must use https"),
        ("https://10.256.0.1/", False, "", "'10.256.0.1' ends in a number but is no IPv4 address"),
    ],
)
def test_the_destination_rules(url: str, allow_http: bool, allow: str, message: str | None) -> None:
    networks = parse_allow_cidrs(allow)
    if message is None:
        assert check_destination(url, allow_http=allow_http, allow=networks) == url
        return
    errors = refusal(check_destination, url, allow_http=allow_http, allow=networks)
    assert errors == [{"path": "url", "message": message}]


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("s" * 16, None),
        ("whsec_" + "A" * 12, None),
        ("s" * 15, "secret must be at least 16 characters"),
        ("whsec_!!!!!!!!!!!!", "a secret starting with 'whsec_' must continue in base64"),
    ],
)
def test_the_secret_rules(secret: str, message: str | None) -> None:
    if message is None:
        assert check_new_secret(secret) == secret
        return
    assert refusal(check_new_secret, secret) == [{"path": "secret", "message": message}]


# --- recovery windows -------------------------------------------------------------------------

NOW = 1_700_000_000_000
SINCE = "2023-11-01T00:00:00Z"
SINCE_MS = 1_698_796_800_000


@pytest.mark.parametrize(
    ("since", "until", "window"),
    [
        (SINCE, SINCE, (SINCE_MS, SINCE_MS)),
        (SINCE, "2023-11-15T00:00:00Z", (SINCE_MS, SINCE_MS + 14 * DAY_MS)),
        (SINCE, "2023-11-01T01:00:00+01:00", (SINCE_MS, SINCE_MS)),
        ("2023-11-01T00:00:00", "2023-11-01T00:00:00.001Z", (SINCE_MS, SINCE_MS + 1)),
    ],
    ids=["since-equals-until", "exactly-14-days", "offsets", "naive-is-utc"],
)
def test_windows_up_to_the_limit_are_inclusive_bounds(
    since: str, until: str, window: tuple[int, int]
) -> None:
    assert parse_window(since, until, NOW, max_ms=14 * DAY_MS) == window


def test_until_defaults_to_now() -> None:
    since = NOW - DAY_MS
    iso = "2023-11-13T22:13:20Z"
    assert parse_window(iso, None, NOW, max_ms=14 * DAY_MS) == (since, NOW)


@pytest.mark.parametrize(
    ("since", "until", "path", "message"),
    [
        ("yesterday", None, "since", "not an RFC 3339 time"),
        (SINCE, "tomorrow", "until", "not an RFC 3339 time"),
        (SINCE, "2023-10-31T23:59:59.999Z", "until", "until is before since"),
        (SINCE, "2023-11-15T00:00:00.001Z", "until", "the window is at most 14 days"),
        ("2023-10-30T00:00:00Z", None, "since", "the window is at most 14 days"),
        ("2030-01-01T00:00:00Z", None, "since", "since is in the future (until defaults to now)"),
    ],
)
def test_each_bad_window_says_which_end_is_wrong(
    since: str, until: str | None, path: str, message: str
) -> None:
    now = SINCE_MS + 20 * DAY_MS if until is None else NOW
    errors = refusal(parse_window, since, until, now, max_ms=14 * DAY_MS)
    assert errors == [{"path": path, "message": message}]


@pytest.mark.parametrize(
    ("max_ms", "said"),
    [
        (DAY_MS, "1 day"),
        (2 * DAY_MS, "2 days"),
        (3_600_000, "1 hour"),
        (25 * 3_600_000, "25 hours"),
        (60_000, "1 minute"),
        (120_000, "2 minutes"),
        (90_000, "90 seconds"),
        (1_000, "1 second"),
        (1_500, "1.5 seconds"),
        (500, "0.5 seconds"),
    ],
)
def test_the_window_limit_is_said_as_people_say_it(max_ms: int, said: str) -> None:
    errors = refusal(parse_window, "2020-01-01T00:00:00Z", None, NOW, max_ms=max_ms)
    assert errors == [{"path": "since", "message": f"the window is at most {said}"}]
