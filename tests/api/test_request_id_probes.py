"""Hostile `X-Request-Id` values: only a plain id is kept, whatever sits at its end."""

from __future__ import annotations

import pytest

from causeflow.api.access import request_id_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "sent",
    [b"abc\n", b"abc\r\n", b"abc\n\x1b[31m", b"\nabc", b'abc"}', b"a" * 128 + b"\n"],
)
def test_a_line_break_at_either_end_is_not_a_plain_id(sent: bytes) -> None:
    given = request_id_of({"headers": [(b"x-request-id", sent)]})
    assert "\n" not in given and "\r" not in given and given != sent.decode("latin-1")
    assert len(given) == 32 and int(given, 16) >= 0


def test_a_plain_id_is_kept() -> None:
    assert request_id_of({"headers": [(b"X-Request-Id", b"req-1.2:3_4")]}) == "req-1.2:3_4"
