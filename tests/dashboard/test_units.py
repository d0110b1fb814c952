"""Pure parts of the dashboard: form conversions, the delivery chart, the in-process caller."""

from __future__ import annotations

from typing import Any

import pytest

from causeflow.clock import ms_to_rfc3339, parse_rfc3339
from causeflow.dashboard.api import ApiClient, ApiError, call_asgi
from causeflow.dashboard.chart import HOUR_MS, buckets_from_series, delivery_chart
from causeflow.dashboard.forms import (
    FormError,
    format_destination,
    format_headers,
    id_time_ms,
    local_to_rfc3339,
    ms_to_local,
    parse_destination,
    parse_events,
    parse_filter,
    parse_headers,
)
from causeflow.dashboard.incident_pages import next_statuses
from causeflow.dashboard.page import safe_next
from causeflow.ids import _encode

pytestmark = pytest.mark.unit


def id_at(prefix: str, ms: int) -> str:
    """An id carrying exactly `ms` (ids.new_id never goes back in time within a process)."""
    return f"{prefix}_{_encode(ms, 10)}{'0' * 16}"


NOW = parse_rfc3339("2026-11-27T12:00:00Z")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("  \n", None),
        ("Authorization: Bearer x", {"Authorization": "Bearer x"}),
        ("A: 1\n\nB:2:3", {"A": "1", "B": "2:3"}),
    ],
)
def test_parse_headers(text: str, expected: dict[str, str] | None) -> None:
    assert parse_headers(text) == expected


@pytest.mark.parametrize("text", ["no colon", ": value"])
def test_parse_headers_refuses(text: str) -> None:
    with pytest.raises(FormError):
        parse_headers(text)


def test_headers_round_trip() -> None:
    assert parse_headers(format_headers({"A": "1", "B": "<redacted>"})) == {
        "A": "1",
        "B": "<redacted>",
    }


def test_parse_filter() -> None:
    assert parse_filter("") is None
    assert parse_filter("{}") is None
    assert parse_filter('{"severity": ["high"]}') == {"severity": ["high"]}
    for bad in ("[1]", "{", '"x"'):
        with pytest.raises(FormError):
            parse_filter(bad)


def test_parse_events() -> None:
    known = ("a.one", "b.two", "c.three")
    assert parse_events(["c.three", "a.one", "a.one"], known) == ["a.one", "c.three"]
    assert parse_events(["a.one", "*"], known) == ["*"]
    assert parse_events(["zz.unknown"], known) == ["zz.unknown"]  # the API judges names
    with pytest.raises(FormError):
        parse_events([" "], known)


def test_times() -> None:
    assert local_to_rfc3339("2026-11-27T08:42") == "2026-11-27T08:42:00.000Z"
    assert local_to_rfc3339("2026-11-27T08:42:05+01:00") == "2026-11-27T07:42:05.000Z"
    assert ms_to_local(NOW) == "2026-11-27T12:00"
    with pytest.raises(FormError):
        local_to_rfc3339("yesterday")


def test_id_time() -> None:
    assert id_time_ms(id_at("evt", NOW)) == NOW
    assert id_time_ms("evt_short") is None
    assert id_time_ms("evt_" + "!" * 26) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/ui/incidents?status=open", "/ui/incidents?status=open"),
        ("//evil.example/ui", "/ui"),
        ("/ui//evil.example", "/ui"),
        ("https://evil.example/ui", "/ui"),
        ("/v1/tenant", "/ui"),
        ("/ui\\evil", "/ui"),
        (None, "/ui"),
    ],
)
def test_safe_next(value: Any, expected: str) -> None:
    assert safe_next(value) == expected


def test_next_statuses_follow_the_lifecycle() -> None:
    assert next_statuses("open") == [
        "triaging",
        "investigating",
        "awaiting_approval",
        "resolved",
        "closed",
    ]
    assert next_statuses("resolved") == ["open", "closed"]
    assert next_statuses("closed") == []


def series(*bars: tuple[int, int]) -> dict[str, Any]:
    return {
        "bucketSeconds": 3600,
        "buckets": [
            {"start": ms_to_rfc3339(NOW - (len(bars) - i) * HOUR_MS), "succeeded": s, "failed": f}
            for i, (s, f) in enumerate(bars)
        ],
    }


def test_buckets_come_from_the_statistics_series() -> None:
    buckets = buckets_from_series(series((1, 0), (0, 0), (2, 3)))
    assert buckets.succeeded == [1, 0, 2] and buckets.failed == [0, 0, 3]
    assert buckets.start_ms == NOW - 3 * HOUR_MS
    assert (buckets.total_succeeded, buckets.total_failed) == (3, 3)
    assert buckets_from_series({}).succeeded == []


def test_chart_is_an_accessible_svg_with_one_bar_per_hour_that_has_any() -> None:
    svg = str(delivery_chart(buckets_from_series(series(*([(0, 0)] * 22), (3, 0), (0, 0)))))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'role="img"' in svg and "<title" in svg and "3 succeeded and 0 failed" in svg
    assert svg.count('class="chart-ok"') == 1
    assert svg.count('class="chart-failed"') == 0
    assert "style=" not in svg  # the CSP admits no inline styles
    empty = str(delivery_chart(buckets_from_series(series(*([(0, 0)] * 24)))))
    assert "<rect" not in empty
    assert "<svg" in str(delivery_chart(buckets_from_series({})))


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A plain ASGI app that answers with what it was sent."""
    message = await receive()
    import orjson

    body = orjson.dumps(
        {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode(),
            "auth": dict(scope["headers"]).get(b"authorization", b"").decode(),
            "body": message["body"].decode(),
        }
    )
    status = 404 if scope["path"] == "/missing" else 200
    if status == 404:
        body = b'{"error":"not_found","message":"no such thing","details":{"x":1}}'
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def test_call_asgi_round_trip() -> None:
    response = await call_asgi(
        echo_app, "post", "/v1/x", query={"a": "1", "skip": None, "b": ""}, body=b'{"k":1}'
    )
    assert response.ok
    assert response.json() == {
        "method": "POST",
        "path": "/v1/x",
        "query": "a=1",
        "auth": "",
        "body": '{"k":1}',
    }


async def test_api_client_sends_the_credential_and_raises_errors() -> None:
    client = ApiClient(echo_app, "cflo_secret")
    echoed = await client.post("/v1/y", {"z": 2})
    assert echoed["auth"] == "Bearer cflo_secret"
    assert echoed["body"] == '{"z":2}'
    with pytest.raises(ApiError) as caught:
        await client.get("/missing")
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    assert caught.value.message == "no such thing"
    assert caught.value.details == {"x": 1}


def test_event_search_starts_before_the_id_or_the_hint() -> None:
    from causeflow.dashboard.events_pages import SEARCH_SKEW_MS, search_from_ms

    event_id = id_at("evt", NOW)
    assert search_from_ms(event_id, None) == NOW - SEARCH_SKEW_MS
    earlier = ms_to_rfc3339(NOW - 60_000)
    assert search_from_ms(event_id, earlier) == NOW - 60_000 - SEARCH_SKEW_MS
    later = ms_to_rfc3339(NOW + 60_000)
    assert search_from_ms(event_id, later) == NOW - SEARCH_SKEW_MS
    assert search_from_ms(event_id, "not a time") == NOW - SEARCH_SKEW_MS
    assert search_from_ms("inc_" + event_id[4:], None) is None


def test_parse_destination_shapes_only_the_chosen_types_fields() -> None:
    fields = {
        "redis.stream": " s ",
        "redis.maxLen": "100",
        "nats.subject": "ignored",
        "rabbitmq.exchange": "",
        "rabbitmq.routingKey": " k",
        "mqtt.topic": "t",
        "mqtt.qos": "2",
    }
    assert parse_destination("redis", fields) == ("redis", {"stream": "s", "maxLen": 100})
    assert parse_destination("", fields) == ("webhook", None)
    assert parse_destination("webhook", fields) == ("webhook", None)
    assert parse_destination("nats", fields) == ("nats", {"subject": "ignored"})
    # "" is RabbitMQ's default exchange: kept, as is the routing key as typed
    assert parse_destination("rabbitmq", fields) == (
        "rabbitmq",
        {"exchange": "", "routingKey": " k"},
    )
    assert parse_destination("mqtt", fields) == ("mqtt", {"topic": "t", "qos": 2})
    # what is not a whole number goes to the API as typed, which names the field
    assert parse_destination("redis", {"redis.stream": "s", "redis.maxLen": "-1"})[1] == {
        "stream": "s",
        "maxLen": "-1",
    }
    assert parse_destination("kafka", fields) == ("kafka", None)


def test_format_destination_is_the_forms_text() -> None:
    assert format_destination("redis", {"stream": "s", "maxLen": 5}) == {
        "redis.stream": "s",
        "redis.maxLen": "5",
    }
    assert format_destination("nats", None) == {"nats.subject": "", "nats.stream": ""}
    assert format_destination("webhook", None) == {}
