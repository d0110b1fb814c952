"""The pure rules of trigger actions: JSON Pointers, `when`, values and defaults, and that no
config or incoming event makes them fail with anything but a 422 at creation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from causeflow.errors import ValidationFailed
from causeflow.trigger import actions

pytestmark = pytest.mark.unit

DOC = {"a": {"b/c": [10, {"~x": "deep"}]}, "n": 0, "t": True, "z": None, "s": " padded "}


@pytest.mark.parametrize(
    ("pointer", "found"),
    [
        ("/a/b~1c/0", 10),
        ("/a/b~1c/1/~0x", "deep"),
        ("/a/b~1c/01", None),
        ("/a/b~1c/2", None),
        ("/n/x", None),
        ("/missing", None),
        ("/z", "null"),
    ],
)
def test_pointers(pointer: str, found: Any) -> None:
    got = actions.resolve(DOC, pointer)
    if found is None:
        assert got is actions._MISSING
    elif found == "null":
        assert got is None
    else:
        assert got == found


@pytest.mark.parametrize(
    ("when", "holds"),
    [
        ({"/n": 0}, True),
        ({"/n": False}, False),  # false is not 0
        ({"/t": 1}, False),  # true is not 1
        ({"/t": True}, True),
        ({"/n": 0.0}, True),
        ({"/z": None}, True),
        ({"/missing": None}, False),
        ({"/s": [" padded ", "x"]}, True),
        ({"/s": "padded"}, False),
        ({"/n": 0, "/t": False}, False),
    ],
)
def test_when(when: dict, holds: bool) -> None:
    assert actions.matches({"when": when}, DOC) is holds


def test_values_come_from_pointers_then_top_level_names_then_defaults() -> None:
    config = {"fields": {"title": "/a/b~1c/1/~0x"}, "defaults": {"service": "checkout"}}
    got = actions.values(actions.INCIDENT_CREATED, config, {"service": " ", "url": 5, "title": "x"})
    assert got["title"] is None  # the configured pointer leads nowhere: not the top level
    got = actions.values(actions.INCIDENT_CREATED, config, DOC)
    assert (got["title"], got["service"], got["severity"]) == ("deep", "checkout", None)
    got = actions.values(actions.INCIDENT_CREATED, {}, {"title": "t", "url": 5, "service": True})
    assert (got["title"], got["url"], got["service"]) == ("t", "5", None)


def test_severity_is_mapped_then_defaulted() -> None:
    def severity(sent: Any, default: str | None = None) -> str:
        config = {"defaults": {"severity": default}} if default else {}
        plan = actions.plan(actions.INCIDENT_CREATED, config, {"title": "t", "severity": sent})
        assert plan.alert is not None
        return plan.alert.severity

    assert severity("CRITICAL") == "critical"
    assert severity("warning") == "medium"
    assert severity("urgent") == "medium"
    assert severity("urgent", "high") == "high"
    assert severity(None, "low") == "low"


def test_the_fingerprint_defaults_to_a_hash_of_title_and_service() -> None:
    def fingerprint(doc: dict) -> str:
        plan = actions.plan(actions.INCIDENT_CREATED, {}, doc)
        assert plan.alert is not None
        return plan.alert.fingerprint

    assert fingerprint({"title": "a  b", "service": "s"}) == fingerprint(
        {"title": "a b", "service": "s"}
    )
    assert fingerprint({"title": "a", "service": "s"}) != fingerprint(
        {"title": "a", "service": "t"}
    )
    assert fingerprint({"title": "a", "fingerprint": 7}) == "7"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
names = st.sampled_from(
    ["title", "service", "severity", "fingerprint", "id", "url", "x", "/a", "~"]
)
configs = st.dictionaries(
    st.sampled_from(["fields", "defaults", "when", "other"]),
    st.dictionaries(names | st.text(max_size=6), json_values, max_size=4) | json_values,
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(
    action=st.sampled_from(actions.ACTIONS),
    config=configs,
    document=st.dictionaries(names | st.text(max_size=6), json_values, max_size=5),
)
def test_any_config_is_accepted_or_a_422_and_any_event_then_runs(
    action: str, config: dict, document: dict
) -> None:
    try:
        actions.check_config(action, config)
    except ValidationFailed as exc:
        assert exc.details and exc.details["errors"]
        assert all(e["path"].startswith("config") for e in exc.details["errors"])
        return
    plan = actions.plan(action, config, document)
    assert plan.alert is None or plan.change is None
    if plan.alert is not None:
        assert plan.alert.title and plan.alert.fingerprint and plan.alert.status == "firing"
    if plan.change is not None:
        assert plan.change.title and plan.change.service and plan.change.change_id


def test_storable_turns_what_json_columns_cannot_hold_into_what_they_can() -> None:
    import orjson

    document = {
        "small": 7,
        "big": 2**70,
        "huge": int("9" * 400),
        "text": "a\ud800b",
        "\udc00key": ["\udbff", {"n": -(2**64)}],
    }
    stored = actions.storable(document)
    assert stored == {
        "small": 7,
        "big": float(2**70),
        "huge": "9" * 400,
        "text": "a\ufffdb",
        "\ufffdkey": ["\ufffd", {"n": float(-(2**64))}],
    }
    orjson.dumps(stored)
    plain = {"title": "ok", "n": 2**63 - 1}
    assert actions.storable(plain) is plain
