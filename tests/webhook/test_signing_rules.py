"""Which headers a subscription may never set, and how long a signing secret must be.

The rule behind `RESERVED_HEADERS`: a subscription may not set the headers the service sets
itself (a receiver could be fooled about the event or its signature) nor any header that frames
or routes the HTTP message (RFC 9110 §7.6.1 hop-by-hop fields, Host, Content-Length, Expect),
in any spelling of its case.
"""

from __future__ import annotations

import pytest

from causeflow.webhook.signing import (
    MIN_SECRET_LENGTH,
    check_secret,
    delivery_headers,
    is_header_allowed,
)

pytestmark = pytest.mark.unit

SERVICE_HEADERS = [
    "Content-Type",
    "User-Agent",
    "X-CauseFlow-Event",
    "X-CauseFlow-Delivery",
    "X-CauseFlow-Signature",
    "X-CauseFlow-Sequence",
    "X-CauseFlow-Subscription",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
]
MESSAGE_FRAMING = [
    "Host",
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "Keep-Alive",
    "TE",
    "Trailer",
    "Upgrade",
    "Expect",
    "Proxy-Connection",
    # spoken to the operator's proxy (`CAUSEFLOW_WEBHOOK_PROXY`), never the subscription's to set
    "Proxy-Authorization",
]


def spellings(name: str) -> list[str]:
    return [name, name.lower(), name.upper(), name.swapcase()]


@pytest.mark.parametrize("name", SERVICE_HEADERS + MESSAGE_FRAMING)
def test_a_reserved_header_is_refused_in_every_case(name: str) -> None:
    for spelling in spellings(name):
        assert not is_header_allowed(spelling, "x"), spelling


@pytest.mark.parametrize("name", SERVICE_HEADERS + MESSAGE_FRAMING)
def test_a_reserved_header_from_a_subscription_never_reaches_the_wire(name: str) -> None:
    extra = {spelling: "forged" for spelling in spellings(name)}
    headers = delivery_headers(
        event_type="incident.created",
        msg_id="msg_1",
        timestamp=1_700_000_000,
        body=b"{}",
        secrets=["s" * MIN_SECRET_LENGTH],
        version="1.0",
        extra=extra,
    )
    assert "forged" not in headers.values()


@pytest.mark.parametrize(
    "name", ["Authorization", "X-Api-Key", "X-Tenant", "Accept", "Cookie", "X-Forwarded-For"]
)
def test_other_headers_pass(name: str) -> None:
    assert is_header_allowed(name, "value")


def test_a_secret_of_exactly_the_minimum_length_is_enough() -> None:
    assert MIN_SECRET_LENGTH == 16
    check_secret("a" * 16)
    with pytest.raises(ValueError) as info:
        check_secret("a" * 15)
    assert str(info.value) == "secret must be at least 16 characters"


def test_a_delivery_without_a_secret_is_refused_saying_so() -> None:
    with pytest.raises(ValueError) as info:
        delivery_headers(event_type="t", msg_id="m", timestamp=0, body=b"", secrets=[], version="1")
    assert str(info.value) == "at least one secret is required"


def _headers(**extra: object) -> dict[str, str]:
    return delivery_headers(
        event_type="incident.created",
        msg_id="msg_1",
        timestamp=1_700_000_000,
        body=b"{}",
        secrets=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        version="1.0",
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"subscription_id": "sub_1", "sequence": 7}, {"sub_1", "7"}),
        ({"subscription_id": "sub_1", "sequence": 0}, {"sub_1", "0"}),
        ({"subscription_id": "sub_1"}, None),  # a test delivery or a replay: no sequence
        ({"sequence": 7}, None),
        ({}, None),
    ],
)
def test_a_sequenced_delivery_names_its_subscription_and_sequence(
    extra: dict[str, object], expected: set[str] | None
) -> None:
    headers = _headers(**extra)
    named = {headers.get("X-CauseFlow-Subscription"), headers.get("X-CauseFlow-Sequence")}
    if expected is None:
        assert "X-CauseFlow-Subscription" not in headers
        assert "X-CauseFlow-Sequence" not in headers
    else:
        assert named == expected
