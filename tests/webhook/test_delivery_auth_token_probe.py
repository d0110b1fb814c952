"""Values a subscription gives for its requests (a bearer token, a header name) are checked as a
whole: a line break at their end would become a header that every delivery then fails to send."""

from __future__ import annotations

import pytest

from causeflow.errors import ValidationFailed
from causeflow.webhook.deliveryauth import check_delivery_auth
from causeflow.webhook.signing import is_header_allowed

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("token", ["abc\n", "abc\r\n", "\nabc"])
def test_a_line_break_in_a_bearer_token_is_refused(token: str) -> None:
    with pytest.raises(ValidationFailed):
        check_delivery_auth({"type": "bearer", "token": token}, allow_http=False, allow=())


def test_a_plain_bearer_token_is_taken() -> None:
    auth = check_delivery_auth(
        {"type": "bearer", "token": "s3cr3t.t0k3n"}, allow_http=False, allow=()
    )
    assert auth.token == "s3cr3t.t0k3n"


@pytest.mark.parametrize("name", ["X-Tenant\n", "X-Tenant\r\n", "\nX-Tenant"])
def test_a_line_break_in_a_custom_header_name_is_refused(name: str) -> None:
    assert not is_header_allowed(name, "v")
    assert is_header_allowed("X-Tenant", "v")
