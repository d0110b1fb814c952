"""Verification rules of the shared signature code: tolerance boundary, mixed header entries."""

# Equivalent mutants (Python's codec names ignore case; token_bytes(None) draws its default of
# 32 bytes):
# equivalent: causeflow_sdk.signatures.x_causeflow_signature__mutmut_10 -- "UTF-8" is "utf-8".
# equivalent: causeflow_sdk.signatures.x_generate_secret__mutmut_4 -- token_bytes(None) is 32.
# equivalent: causeflow_sdk.signatures.x_generate_secret__mutmut_7 -- "ASCII" is "ascii".
# equivalent: causeflow_sdk.signatures.x_standard_signature__mutmut_16 -- "ASCII" is "ascii".
# equivalent: causeflow_sdk.signatures.x_verify_causeflow__mutmut_8, 15 -- codec name case.
# equivalent: causeflow_sdk.signatures.x_verify_standard__mutmut_19, 25 -- codec name case.

from __future__ import annotations

import base64

import pytest

from causeflow_sdk.signatures import (
    SECRET_PREFIX,
    generate_secret,
    standard_signature,
    verify_standard,
)

pytestmark = pytest.mark.unit

SECRET = "whsec_" + base64.b64encode(b"k" * 24).decode()
BODY = b'{"a":1}'


def good(timestamp: int = 1_700_000_000) -> str:
    return standard_signature(SECRET, "msg_1", timestamp, BODY)


@pytest.mark.parametrize(
    ("skew", "accepted"), [(0, True), (299, True), (300, True), (301, False), (-300, True)]
)
def test_a_timestamp_exactly_at_the_tolerance_is_still_accepted(skew: int, accepted: bool) -> None:
    now = 1_700_000_000 + skew
    assert verify_standard([SECRET], "msg_1", 1_700_000_000, BODY, good(), now=now) is accepted


@pytest.mark.parametrize(
    "header",
    [
        "v2,AAAA {good}",
        "v1a,AAAA {good}",
        "garbage {good} v1,AAAA",
        "v1,AAAA v1,BBBB {good}",
    ],
)
def test_the_matching_entry_is_found_wherever_it_stands(header: str) -> None:
    assert verify_standard([SECRET], "msg_1", 1_700_000_000, BODY, header.format(good=good()))


def test_generated_secrets_carry_32_random_bytes() -> None:
    secrets = {generate_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert secret.startswith(SECRET_PREFIX)
        assert len(base64.b64decode(secret.removeprefix(SECRET_PREFIX))) == 32
