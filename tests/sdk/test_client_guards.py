"""Guards of the client library against values that would switch a check off silently: a NaN
tolerance or clock in `verify`, and a server that sends a page cursor it sent before."""

from __future__ import annotations

import math
import time

import pytest

from causeflow_sdk import CauseFlowConnectionError
from causeflow_sdk.resources import _walk
from causeflow_sdk.signatures import standard_signature
from causeflow_sdk.types import Page
from causeflow_sdk.webhooks import verify_signature as verify

pytestmark = pytest.mark.unit

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = b'{"id":"evt_1","event":"incident.created","data":{}}'


def _stale_headers() -> dict[str, str]:
    stamp = int(time.time()) - 10_000  # far outside any sane tolerance
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": standard_signature(SECRET, "msg_1", stamp, BODY),
    }


@pytest.mark.parametrize(
    "kwargs",
    [{"tolerance": math.nan}, {"tolerance": -1.0}, {"now": math.nan}, {"now": math.inf}],
)
def test_a_value_that_would_disable_the_timestamp_check_is_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        verify(BODY, _stale_headers(), SECRET, **kwargs)


def test_an_infinite_tolerance_still_means_no_timestamp_check() -> None:
    assert verify(BODY, _stale_headers(), SECRET, tolerance=math.inf) == "standard"


async def test_a_repeated_cursor_ends_the_walk_with_an_error() -> None:
    pages = {None: Page(items=[1], cursor="a", count=1), "a": Page(items=[2], cursor="a", count=1)}

    async def fetch(cursor: str | None) -> Page[int]:
        return pages[cursor]

    seen: list[int] = []
    with pytest.raises(CauseFlowConnectionError):
        async for item in _walk(fetch):
            seen.append(item)
    assert seen == [1, 2]  # each page once, then the error
