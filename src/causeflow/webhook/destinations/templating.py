"""Where a broker message goes, from the delivery's headers (pure, no I/O).

A destination's routing key or topic may name the event's type with the one placeholder
`{type}`; nothing else in it is interpreted (no format strings, no other fields), so a brace
elsewhere is a literal brace. The event type is the `X-CauseFlow-Event` header that
`webhook.signing.delivery_headers` sets on every attempt.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

EVENT_TYPE_HEADER = "X-CauseFlow-Event"
MESSAGE_ID_HEADER = "webhook-id"
PLACEHOLDER = "{type}"


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header `name` in any case, or None."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def expand(template: str, headers: Mapping[str, str]) -> str:
    """`template` with each `{type}` replaced by the event type; ValueError when it has one
    and the headers carry no event type."""
    if PLACEHOLDER not in template:
        return template
    event_type = header(headers, EVENT_TYPE_HEADER)
    if not event_type:
        raise ValueError(f"the destination names {PLACEHOLDER} but the message has no event type")
    return template.replace(PLACEHOLDER, event_type)


def message_id(headers: Mapping[str, str]) -> str:
    """The delivery's id (`webhook-id`), or a fresh one for a message without it."""
    return header(headers, MESSAGE_ID_HEADER) or f"msg_{uuid.uuid4().hex}"
