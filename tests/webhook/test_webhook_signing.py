"""Delivery signatures: the vectors of docs/reference.md §5.5, both verifiers, rotation, headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import orjson
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from causeflow.webhook.signing import (
    RESERVED_HEADERS,
    causeflow_signature,
    check_secret,
    delivery_headers,
    generate_secret,
    standard_key,
    standard_signature,
    verify_causeflow,
    verify_standard,
)

pytestmark = pytest.mark.unit

VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTORS = [
    (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "sha256=80ec8a89ce3cd22133a1066caecb4d04fea7467657c8514d717ec42c38a5c94c",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ),
    (
        "your-signing-secret",
        "sha256=d4951e0b55cb89d60c7c169ef0f393a34390089ebe2ca1fd3ed1f0403eada815",
        "v1,bTIaACW7On1ZLR8OTF3cXilMqAMXtTkd5H7yEEHc0Yg=",
    ),
]


def hex_verify(raw_body: str, signature_header: str, secret: str) -> bool:
    """The Node.js verifier of docs/reference.md §5.5 in Python, without its length check.

    createHmac("sha256", secret) keys with the string's UTF-8 bytes and update(rawBody) hashes
    its UTF-8 bytes; timingSafeEqual throws when the buffers differ in length.
    """
    expected = (
        "sha256="
        + hmac.new(secret.encode("utf-8"), raw_body.encode("utf-8"), hashlib.sha256).hexdigest()
    )
    given, wanted = signature_header.encode("utf-8"), expected.encode("utf-8")
    if len(given) != len(wanted):
        raise ValueError("Input buffers must have the same byte length")
    return hmac.compare_digest(given, wanted)


def library_for(secret: str) -> Webhook:
    """A Standard Webhooks verifier as a receiver would build it for this secret."""
    return Webhook(secret if secret.startswith("whsec_") else secret.encode("utf-8"))


def vector_headers(secret: str) -> dict[str, str]:
    return delivery_headers(
        event_type="incident.created",
        msg_id=VECTOR_ID,
        timestamp=VECTOR_TS,
        body=VECTOR_BODY,
        secrets=[secret],
        version="1.2.3",
    )


@pytest.mark.parametrize(("secret", "causeflow", "standard"), VECTORS)
def test_reference_vectors(secret: str, causeflow: str, standard: str) -> None:
    assert causeflow_signature(secret, VECTOR_BODY) == causeflow
    assert standard_signature(secret, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == standard
    headers = vector_headers(secret)
    assert headers["X-CauseFlow-Signature"] == causeflow
    assert headers["webhook-signature"] == standard


@pytest.mark.parametrize(("secret", "causeflow", "standard"), VECTORS)
def test_vectors_match_the_standardwebhooks_library(
    secret: str, causeflow: str, standard: str
) -> None:
    when = datetime.fromtimestamp(VECTOR_TS, tz=UTC)
    assert library_for(secret).sign(VECTOR_ID, when, VECTOR_BODY.decode()) == standard


@pytest.mark.parametrize(("secret", "causeflow", "standard"), VECTORS)
def test_vectors_pass_the_hex_verifier(secret: str, causeflow: str, standard: str) -> None:
    headers = vector_headers(secret)
    assert hex_verify(VECTOR_BODY.decode(), headers["X-CauseFlow-Signature"], secret)
    assert not hex_verify('{"test": 2432232315}', headers["X-CauseFlow-Signature"], secret)


def test_all_headers_for_one_attempt() -> None:
    headers = vector_headers("your-signing-secret")
    assert headers == {
        "Content-Type": "application/json",
        "User-Agent": "CauseFlow-Webhooks/1.2.3",
        "X-CauseFlow-Event": "incident.created",
        "X-CauseFlow-Delivery": VECTOR_ID,
        "X-CauseFlow-Signature": VECTORS[1][1],
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTORS[1][2],
    }


@pytest.mark.parametrize("secret", ["generated", "your-signing-secret", "pässwörd-ünïcode-1"])
def test_live_delivery_verifies_with_the_library(secret: str) -> None:
    secret = generate_secret() if secret == "generated" else secret
    body = orjson.dumps({"id": "evt_1", "event": "incident.created", "data": {"title": "disk"}})
    now = int(time.time())
    headers = delivery_headers(
        event_type="incident.created",
        msg_id="msg_01",
        timestamp=now,
        body=body,
        secrets=[secret],
        version="0.1.0",
    )
    assert library_for(secret).verify(body, headers) == orjson.loads(body)
    assert hex_verify(body.decode(), headers["X-CauseFlow-Signature"], secret)
    with pytest.raises(WebhookVerificationError):
        library_for(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        library_for(generate_secret()).verify(body, headers)


def test_rotation_signs_with_both_secrets_and_causeflow_with_the_current_only() -> None:
    current, previous = generate_secret(), "an-older-plain-secret"
    body = b'{"id":"evt_2"}'
    now = int(time.time())
    headers = delivery_headers(
        event_type="incident.updated",
        msg_id="msg_02",
        timestamp=now,
        body=body,
        secrets=[current, previous],
        version="0.1.0",
    )
    entries = headers["webhook-signature"].split(" ")
    assert entries == [
        standard_signature(current, "msg_02", now, body),
        standard_signature(previous, "msg_02", now, body),
    ]
    # A receiver holding either secret verifies.
    library_for(current).verify(body, headers)
    library_for(previous).verify(body, headers)
    assert verify_standard([previous], "msg_02", now, body, headers["webhook-signature"])
    assert headers["X-CauseFlow-Signature"] == causeflow_signature(current, body)
    assert hex_verify(body.decode(), headers["X-CauseFlow-Signature"], current)
    assert not hex_verify(body.decode(), headers["X-CauseFlow-Signature"], previous)


def test_extra_headers_cannot_replace_reserved_ones() -> None:
    extra = {
        "content-type": "text/plain",
        "USER-AGENT": "evil",
        "x-causeflow-signature": "sha256=forged",
        "X-CAUSEFLOW-EVENT": "forged",
        "x-causeflow-delivery": "forged",
        "Webhook-Id": "forged",
        "WEBHOOK-TIMESTAMP": "1",
        "Webhook-Signature": "v1,forged",
        "Host": "internal.example",
        "content-length": "1",
        "Transfer-Encoding": "chunked",
        "Authorization": "Bearer receiver-token",
        "X-Team": "payments",
        "X-Injected": "a\r\nX-Evil: 1",
        "bad name": "x",
    }
    headers = delivery_headers(
        event_type="incident.created",
        msg_id=VECTOR_ID,
        timestamp=VECTOR_TS,
        body=VECTOR_BODY,
        secrets=["your-signing-secret"],
        version="1.2.3",
        extra=extra,
    )
    lowered: dict[str, list[str]] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower(), []).append(value)
    assert all(len(values) == 1 for values in lowered.values())
    assert lowered["x-causeflow-signature"] == [VECTORS[1][1]]
    assert lowered["webhook-signature"] == [VECTORS[1][2]]
    assert lowered["content-type"] == ["application/json"]
    assert lowered["user-agent"] == ["CauseFlow-Webhooks/1.2.3"]
    assert lowered["webhook-id"] == [VECTOR_ID]
    for framing in ("host", "content-length", "transfer-encoding"):
        assert framing not in lowered
    assert lowered["authorization"] == ["Bearer receiver-token"]
    assert lowered["x-team"] == ["payments"]
    assert "x-injected" not in lowered and "bad name" not in lowered


def test_reserved_names_cover_every_header_the_service_sets() -> None:
    headers = vector_headers("your-signing-secret")
    assert {name.lower() for name in headers} <= RESERVED_HEADERS
    assert {"host", "content-length", "transfer-encoding"} <= RESERVED_HEADERS
    assert all(name == name.lower() for name in RESERVED_HEADERS)
    assert "authorization" not in RESERVED_HEADERS


def test_generated_secrets() -> None:
    first, second = generate_secret(), generate_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert standard_key(first) == base64.b64decode(first.removeprefix("whsec_"))
    check_secret(first)


@pytest.mark.parametrize(
    ("secret", "key"),
    [
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ),
        ("whsec_AAEC", b"\x00\x01\x02"),
        ("whsec_AAE", b"\x00\x01"),  # unpadded base64, as the libraries accept
        ("your-signing-secret", b"your-signing-secret"),
        ("clé-secrète-16+chars", "clé-secrète-16+chars".encode()),
    ],
)
def test_standard_key(secret: str, key: bytes) -> None:
    assert standard_key(secret) == key


@pytest.mark.parametrize("secret", ["short", "whsec_not base64 at all!", "whsec_"])
def test_unusable_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError):
        check_secret(secret)


def test_verify_functions() -> None:
    secret = "your-signing-secret"
    good = VECTORS[1]
    assert verify_causeflow(secret, VECTOR_BODY, good[1])
    assert not verify_causeflow(secret, VECTOR_BODY + b" ", good[1])
    assert not verify_causeflow(secret, VECTOR_BODY, "sha256=00")
    assert not verify_causeflow("another-secret-value", VECTOR_BODY, good[1])
    header = "v1,bm90LWl0 " + good[2]
    assert verify_standard([secret], VECTOR_ID, VECTOR_TS, VECTOR_BODY, header)
    assert not verify_standard([secret], VECTOR_ID, VECTOR_TS + 1, VECTOR_BODY, header)
    assert not verify_standard([secret], VECTOR_ID, VECTOR_TS, VECTOR_BODY, "v2," + good[2][3:])
    assert not verify_standard(["other-secret-val"], VECTOR_ID, VECTOR_TS, VECTOR_BODY, header)
    # Replay window: only checked when the caller passes `now`.
    assert verify_standard([secret], VECTOR_ID, VECTOR_TS, VECTOR_BODY, header, now=VECTOR_TS + 299)
    assert not verify_standard(
        [secret], VECTOR_ID, VECTOR_TS, VECTOR_BODY, header, now=VECTOR_TS + 301
    )


def test_delivery_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        delivery_headers(
            event_type="incident.created",
            msg_id=VECTOR_ID,
            timestamp=VECTOR_TS,
            body=VECTOR_BODY,
            secrets=[],
            version="1",
        )
