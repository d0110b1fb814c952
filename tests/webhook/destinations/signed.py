"""Signed webhook messages for the broker destinations' tests: a real envelope with the headers
`delivery_headers` gives an attempt, and the check a receiver makes with the client library."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

import yarl

from causeflow.ids import new_id
from causeflow.webhook.destinations.base import Target
from causeflow.webhook.signing import delivery_headers, generate_secret
from causeflow_sdk.models import Envelope, sample_data
from causeflow_sdk.webhooks import verify

SECRET = generate_secret()
EXTRA = {"X-Team": "blue", "X-Trace-Note": "a value, with: punctuation"}


def unique(prefix: str) -> str:
    """A name no other test uses (exchange, queue, topic)."""
    return f"cftest-{prefix}-{uuid.uuid4().hex[:12]}"


def signed_message(event_type: str = "incident.created") -> tuple[bytes, dict[str, str]]:
    envelope = Envelope(
        id=new_id("evt"),
        event=event_type,
        timestamp="2026-11-27T08:42:53.123Z",
        tenantId=new_id("ten"),
        data=sample_data(event_type),
    )
    body = envelope.to_json()
    headers = delivery_headers(
        event_type=event_type,
        msg_id=new_id("msg"),
        timestamp=int(time.time()),
        body=body,
        secrets=[SECRET],
        version="test",
        extra=EXTRA,
    )
    return body, headers


def assert_received(
    body: bytes, headers: Mapping[str, str], sent_body: bytes, sent_headers: Mapping[str, str]
) -> None:
    """The exact bytes and every header arrived, and a receiver's check passes."""
    assert body == sent_body
    assert dict(headers) == dict(sent_headers)
    assert verify(body, headers, SECRET).id == Envelope.model_validate_json(sent_body).id


def target(url: str, options: Mapping[str, object], address: str = "127.0.0.1") -> Target:
    return Target(url=yarl.URL(url), address=address, options=dict(options))
