"""The pure de-duplication rules and the credential helpers, from tables."""

from __future__ import annotations

import base64

import pytest

from causeflow.ingest.auth import key_from_request, redact_query
from causeflow.ingest.dedup import accepted_body, decide, delivery_is_fresh

pytestmark = pytest.mark.unit

KEY = "cflo_" + "a" * 64


@pytest.mark.parametrize(
    ("status", "has_open", "decision"),
    [
        ("firing", False, "create"),
        ("firing", True, "attach"),
        ("acknowledged", False, "create"),
        ("acknowledged", True, "attach"),
        ("resolved", True, "resolve"),
        ("resolved", False, "ignore"),
    ],
)
def test_decide(status: str, has_open: bool, decision: str) -> None:
    assert decide(status, has_open) == decision


def test_decide_refuses_unknown_statuses() -> None:
    with pytest.raises(ValueError):
        decide("exploded", False)


@pytest.mark.parametrize(
    ("received", "now", "ttl", "fresh"),
    [(0, 0, 1, True), (0, 999, 1, True), (0, 1000, 1, False), (0, 86_400_000, 86_400, False)],
)
def test_delivery_window(received: int, now: int, ttl: int, fresh: bool) -> None:
    assert delivery_is_fresh(received, now, ttl) is fresh


def test_accepted_body_keeps_payload_order() -> None:
    body = accepted_body("custom", [("b", "inc_1", "created"), ("a", None, "ignored")])
    assert body == {
        "status": "accepted",
        "provider": "custom",
        "alerts": [
            {"fingerprint": "b", "incidentId": "inc_1", "action": "created"},
            {"fingerprint": "a", "incidentId": None, "action": "ignored"},
        ],
    }


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("headers", "query", "found"),
    [
        ({"x-api-key": KEY}, "", KEY),
        ({"authorization": f"Bearer {KEY}"}, "", KEY),
        ({"authorization": f"bearer  {KEY} "}, "", KEY),
        ({"authorization": _basic("grafana", KEY)}, "", KEY),
        ({"authorization": _basic(KEY, "")}, "", KEY),
        ({"authorization": _basic("user", "")}, "", None),
        ({"authorization": "Basic %%%"}, "", None),
        ({}, f"apiKey={KEY}", KEY),
        ({}, f"x=1&apiKey={KEY}", KEY),
        ({}, "apikey=nope", None),
        ({}, "", None),
        # X-API-Key wins over the others
        ({"x-api-key": KEY, "authorization": "Bearer other"}, "apiKey=third", KEY),
    ],
)
def test_key_from_request(headers: dict[str, str], query: str, found: str | None) -> None:
    assert key_from_request(headers, query) == found


@pytest.mark.parametrize(
    ("query", "redacted"),
    [
        (f"apiKey={KEY}", "apiKey=***"),
        (f"a=1&apiKey={KEY}&b=2", "a=1&apiKey=***&b=2"),
        (f"APIKEY={KEY}", "APIKEY=***"),
        ("token=abc;api_key=def", "token=***;api_key=***"),
        ("plain=1", "plain=1"),
    ],
)
def test_redact_query(query: str, redacted: str) -> None:
    assert redact_query(query) == redacted
