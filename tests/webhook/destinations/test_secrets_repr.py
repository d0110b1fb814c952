"""A subscription's secrets stay out of its repr: a debug log line, an assertion message or a
traceback that prints one shows no broker password, signing secret or header value."""

from __future__ import annotations

import pytest

from causeflow.webhook.subscriptions import Subscription

pytestmark = pytest.mark.unit


def test_the_repr_of_a_subscription_shows_no_secret() -> None:
    sub = Subscription(
        id="sub_1",
        tenant_id="ten_1",
        url="redis://app:****@redis.example.com:6379/0",
        description=None,
        events=("*",),
        filter=None,
        headers={"X-Api-Key": "header-value-secret"},
        secret="whsec_current-secret",
        previous_secret="whsec_previous-secret",
        previous_secret_until=None,
        enabled=True,
        disabled_reason=None,
        first_failure_at=None,
        rate_limit_per_second=None,
        created_at=0,
        updated_at=0,
        from_position=0,
        type="redis",
        options={"stream": "s"},
        destination="redis://app:broker-password@redis.example.com:6379/0",
    )
    shown = repr(sub)
    assert "sub_1" in shown and "redis://app:****@" in shown
    for secret in ("broker-password", "current-secret", "previous-secret", "header-value"):
        assert secret not in shown, secret
