"""Where a broker message goes: the `{type}` placeholder and the headers it is read from."""

from __future__ import annotations

import pytest

from causeflow.webhook.destinations.templating import expand, header, message_id

pytestmark = pytest.mark.unit

TYPED = {"X-CauseFlow-Event": "incident.created", "webhook-id": "msg_1"}


def test_type_is_replaced_everywhere_and_nothing_else_is_read() -> None:
    assert expand("cf.{type}", TYPED) == "cf.incident.created"
    assert expand("{type}/{type}", TYPED) == "incident.created/incident.created"
    assert expand("{id}.{0}.{type!r}", TYPED) == "{id}.{0}.{type!r}"  # no format strings
    assert expand("plain", {}) == "plain"


def test_type_comes_from_the_event_header_in_any_case() -> None:
    assert expand("{type}", {"x-causeflow-event": "a.b"}) == "a.b"
    assert header({"WEBHOOK-ID": "msg_2"}, "webhook-id") == "msg_2"
    for headers in ({}, {"X-CauseFlow-Event": ""}, {"X-CauseFlow-Event-Type": "a.b"}):
        with pytest.raises(ValueError):
            expand("cf.{type}", headers)


def test_message_id_is_the_delivery_id_or_a_fresh_one() -> None:
    assert message_id(TYPED) == "msg_1"
    first, second = message_id({}), message_id({})
    assert first.startswith("msg_") and first != second
