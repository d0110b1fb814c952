"""`causeflow_sdk.webhooks.verify`: both schemes, rotation, and every way a request is refused."""

from __future__ import annotations

import time

import pytest
from standardwebhooks.webhooks import Webhook

from causeflow.webhook.signing import delivery_headers, generate_secret
from causeflow_sdk import WebhookVerificationError, verify, verify_signature
from causeflow_sdk.models import Envelope
from causeflow_sdk.signatures import causeflow_signature, standard_signature

pytestmark = pytest.mark.unit

BODY = (
    b'{"id":"evt_01M86BJ2JKYYK596NGYA1DQ91K","event":"incident.created",'
    b'"timestamp":"2026-11-27T08:42:53.123Z","tenantId":"ten_01M86BHRT3M9S346Q3D25VT4F5",'
    b'"data":{"incidentId":"inc_01M86BHTRK6CQ643DZVMXXQKFB","title":"disk full",'
    b'"severity":"critical","status":"open","source":"datadog"},"test":true}'
)
NOW = 1_800_000_000
MSG = "msg_01M86BJ1KB96Q14DR9GPQY77ZX"


def sign(secrets: list[str], body: bytes = BODY, ts: int = NOW) -> dict[str, str]:
    """The headers the delivery engine sends for this body."""
    return delivery_headers(
        event_type="incident.created",
        msg_id=MSG,
        timestamp=ts,
        body=body,
        secrets=secrets,
        version="test",
    )


def only(headers: dict[str, str], *names: str) -> dict[str, str]:
    wanted = {n.lower() for n in names}
    return {k: v for k, v in headers.items() if k.lower() in wanted}


STANDARD = ("webhook-id", "webhook-timestamp", "webhook-signature")


@pytest.mark.parametrize("secret", ["generated", "your-signing-secret"])
def test_standard_scheme_returns_the_typed_event(secret: str) -> None:
    secret = generate_secret() if secret == "generated" else secret
    headers = only(sign([secret]), *STANDARD)
    event = verify(BODY, headers, secret, now=NOW + 10)
    assert isinstance(event, Envelope)
    assert event.id == "evt_01M86BJ2JKYYK596NGYA1DQ91K"
    assert event.test is True and event.data["severity"] == "critical"
    assert verify_signature(BODY, headers, secret, now=NOW) == "standard"


@pytest.mark.parametrize("secret", ["generated", "your-signing-secret"])
def test_causeflow_scheme_alone(secret: str) -> None:
    secret = generate_secret() if secret == "generated" else secret
    headers = only(sign([secret]), "X-CauseFlow-Signature")
    assert verify(BODY, headers, secret).event == "incident.created"
    assert verify_signature(BODY, headers, secret) == "causeflow"


def test_headers_in_any_case() -> None:
    secret = generate_secret()
    upper = {k.upper(): v for k, v in sign([secret]).items()}
    assert verify(BODY, upper, secret, now=NOW).id.startswith("evt_")


def test_several_secrets_during_a_rotation() -> None:
    old, new = "an-older-plain-secret", generate_secret()
    # The service signs with both during the overlap; the receiver may hold either or both.
    headers = sign([new, old])
    for held in ([old], [new], [old, new], ["unrelated-secret-x", old]):
        assert verify(BODY, only(headers, *STANDARD), held, now=NOW).id
    # X-CauseFlow-Signature carries the current secret only: any held secret that matches it.
    legacy = only(headers, "X-CauseFlow-Signature")
    assert verify(BODY, legacy, ["unrelated-secret-x", new]).id
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify(BODY, legacy, [old])


def test_the_sdk_accepts_what_the_standardwebhooks_library_signs() -> None:
    secret = generate_secret()
    from datetime import UTC, datetime

    signature = Webhook(secret).sign(MSG, datetime.fromtimestamp(NOW, tz=UTC), BODY.decode())
    headers = {"webhook-id": MSG, "webhook-timestamp": str(NOW), "webhook-signature": signature}
    assert verify(BODY, headers, secret, now=NOW).id
    assert signature == standard_signature(secret, MSG, NOW, BODY)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda b: b.replace(b"critical", b"low     "),
        lambda b: b + b" ",
        lambda b: b[:-1],
    ],
)
def test_tampered_body_is_refused_by_both_schemes(tamper) -> None:
    secret = generate_secret()
    headers = sign([secret])
    with pytest.raises(WebhookVerificationError, match="webhook-signature does not match"):
        verify(tamper(BODY), only(headers, *STANDARD), secret, now=NOW)
    with pytest.raises(WebhookVerificationError, match="X-CauseFlow-Signature does not match"):
        verify(tamper(BODY), only(headers, "X-CauseFlow-Signature"), secret)


def test_wrong_secret() -> None:
    headers = sign([generate_secret()])
    with pytest.raises(WebhookVerificationError, match="does not match any secret"):
        verify(BODY, headers, generate_secret(), now=NOW)
    with pytest.raises(WebhookVerificationError, match="does not match any secret"):
        verify(BODY, only(headers, "X-CauseFlow-Signature"), "your-signing-secret")


def test_timestamp_tolerance_both_ways() -> None:
    secret = generate_secret()
    headers = sign([secret])
    assert verify(BODY, headers, secret, now=NOW + 300).id
    assert verify(BODY, headers, secret, now=NOW - 300).id
    with pytest.raises(WebhookVerificationError, match="stale or replayed"):
        verify(BODY, headers, secret, now=NOW + 301)
    with pytest.raises(WebhookVerificationError, match="stale or replayed"):
        verify(BODY, headers, secret, now=NOW - 301)
    assert verify(BODY, headers, secret, now=NOW + 3000, tolerance=3600).id
    # Without `now`, the wall clock decides: a delivery signed long ago is stale.
    with pytest.raises(WebhookVerificationError, match="stale"):
        verify(BODY, headers, secret)
    fresh = sign([secret], ts=int(time.time()))
    assert verify(BODY, fresh, secret).id


def test_a_stale_standard_signature_does_not_fall_back_to_the_body_only_scheme() -> None:
    # X-CauseFlow-Signature has no timestamp; accepting it when the timestamped scheme says
    # "stale" would turn every replay into a valid delivery.
    secret = generate_secret()
    with pytest.raises(WebhookVerificationError, match="stale"):
        verify(BODY, sign([secret]), secret, now=NOW + 10_000)


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        (("webhook-id",), "missing webhook-id"),
        (("webhook-timestamp",), "missing webhook-timestamp"),
        (("webhook-signature", "X-CauseFlow-Signature"), "missing signature headers"),
    ],
)
def test_missing_headers(drop: tuple[str, ...], message: str) -> None:
    secret = generate_secret()
    headers = {
        k: v for k, v in sign([secret]).items() if k.lower() not in {d.lower() for d in drop}
    }
    with pytest.raises(WebhookVerificationError, match=message):
        verify(BODY, headers, secret, now=NOW)
    with pytest.raises(WebhookVerificationError, match="missing signature headers"):
        verify(BODY, {}, secret, now=NOW)


def test_malformed_headers() -> None:
    secret = generate_secret()
    headers = sign([secret])
    with pytest.raises(WebhookVerificationError, match="not an integer"):
        verify(BODY, {**headers, "webhook-timestamp": "yesterday"}, secret, now=NOW)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify(BODY, {**headers, "webhook-signature": "v2,abc"}, secret, now=NOW)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify(BODY, {**headers, "webhook-id": "msg_other"}, secret, now=NOW)


def test_a_signed_body_that_is_not_an_envelope() -> None:
    body = b'{"hello":"world"}'
    headers = {"X-CauseFlow-Signature": causeflow_signature("your-signing-secret", body)}
    assert verify_signature(body, headers, "your-signing-secret") == "causeflow"
    with pytest.raises(WebhookVerificationError, match="not a CauseFlow event"):
        verify(body, headers, "your-signing-secret")


def test_misuse_is_a_programming_error_not_a_verification_failure() -> None:
    headers = sign(["your-signing-secret"])
    with pytest.raises(ValueError, match="at least one"):
        verify(BODY, headers, [], now=NOW)
    with pytest.raises(ValueError, match="base64"):
        verify(BODY, headers, "whsec_not base64!", now=NOW)
    with pytest.raises(TypeError, match="raw request body"):
        verify(BODY.decode(), headers, "your-signing-secret", now=NOW)  # type: ignore[arg-type]
