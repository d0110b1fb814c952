"""SNS envelopes: the canonical string AWS signs, RSA verification (versions 1 and 2), URL rules.

SNS fixtures cannot carry a real AWS signature, so these tests make their own CA and signing
certificate and sign the fixture envelopes at test time. The helpers here are reused by
tests/ingest/test_sns_fetch.py, which serves the certificate over real https.
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from causeflow.ingest.providers.base import InvalidPayload, InvalidSignature
from causeflow.ingest.providers.registry import PROVIDERS
from causeflow.ingest.sns import (
    CertFetcher,
    SnsEnvelope,
    confirm_subscription,
    parse_envelope,
    string_to_sign,
    verify_sns,
    verify_with_certificate,
)

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "support/fixtures/providers/cloudwatch"
TOPIC = "arn:aws:sns:us-east-1:123456789012:causeflow-alarms"


# --- signing identity (shared with the integration test) -----------------------------------------


class SigningIdentity:
    """A private CA and an RSA signing certificate it issued, like SNS's own."""

    def __init__(
        self,
        key_type: str = "rsa",
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test SNS Root CA")])
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self.key: Any = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if key_type == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")]))
            .issuer_name(ca_name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(days=1))
            .not_valid_after(not_after or now + dt.timedelta(days=30))
            .sign(ca_key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, doc: dict[str, Any], version: str = "1", cert_url: str | None = None) -> dict:
        """The envelope with SignatureVersion, SigningCertURL and a fresh Signature set."""
        doc = dict(doc, SignatureVersion=version)
        if cert_url is not None:
            doc["SigningCertURL"] = cert_url
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        message = string_to_sign(parse_envelope(dict(doc, Signature="x")))
        signature = self.key.sign(message, padding.PKCS1v15(), algorithm)
        doc["Signature"] = base64.b64encode(signature).decode("ascii")
        return doc


def load_envelope(name: str) -> dict[str, Any]:
    return orjson.loads((FIXTURES / name).read_bytes())


@pytest.fixture(scope="module")
def identity() -> SigningIdentity:
    return SigningIdentity()


@pytest.fixture(scope="module")
def long_lived_identity() -> SigningIdentity:
    return SigningIdentity(
        not_before=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2100, 1, 1, tzinfo=dt.UTC),
    )


class RecordingFetcher:
    """Stands in for the network in pure tests: returns one certificate, records every call."""

    def __init__(self, cert: x509.Certificate) -> None:
        self.cert = cert
        self.calls: list[tuple[str, str]] = []

    async def fetch(self, url: str) -> x509.Certificate:
        self.calls.append(("fetch", url))
        return self.cert

    async def get(self, url: str) -> bytes:
        self.calls.append(("get", url))
        return b"<ConfirmSubscriptionResponse/>"


# --- the string to sign --------------------------------------------------------------------------


def _envelope(**fields: Any) -> SnsEnvelope:
    base = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": TOPIC,
        "Message": "hello\nworld",
        "Timestamp": "2026-11-27T08:42:53.456Z",
        "SignatureVersion": "1",
        "Signature": "c2ln",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
    }
    return parse_envelope({**base, **fields})


STRING_TO_SIGN_CASES = [
    (
        "notification with subject",
        {"Subject": "ALARM: x"},
        "Message\nhello\nworld\nMessageId\nm-1\nSubject\nALARM: x\nTimestamp\n"
        f"2026-11-27T08:42:53.456Z\nTopicArn\n{TOPIC}\nType\nNotification\n",
    ),
    (
        "notification without subject",
        {},
        "Message\nhello\nworld\nMessageId\nm-1\nTimestamp\n2026-11-27T08:42:53.456Z\n"
        f"TopicArn\n{TOPIC}\nType\nNotification\n",
    ),
    (
        "notification with null subject",
        {"Subject": None},
        "Message\nhello\nworld\nMessageId\nm-1\nTimestamp\n2026-11-27T08:42:53.456Z\n"
        f"TopicArn\n{TOPIC}\nType\nNotification\n",
    ),
    (
        "subscription confirmation",
        {"Type": "SubscriptionConfirmation", "SubscribeURL": "https://s/?a=1", "Token": "t-1"},
        "Message\nhello\nworld\nMessageId\nm-1\nSubscribeURL\nhttps://s/?a=1\nTimestamp\n"
        f"2026-11-27T08:42:53.456Z\nToken\nt-1\nTopicArn\n{TOPIC}\nType\nSubscriptionConfirmation\n",
    ),
    (
        "unsubscribe confirmation (a Subject is never signed here)",
        {
            "Type": "UnsubscribeConfirmation",
            "SubscribeURL": "https://s/?a=1",
            "Token": "t-1",
            "Subject": "ignored",
        },
        "Message\nhello\nworld\nMessageId\nm-1\nSubscribeURL\nhttps://s/?a=1\nTimestamp\n"
        f"2026-11-27T08:42:53.456Z\nToken\nt-1\nTopicArn\n{TOPIC}\nType\nUnsubscribeConfirmation\n",
    ),
]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [(c[1], c[2]) for c in STRING_TO_SIGN_CASES],
    ids=[c[0] for c in STRING_TO_SIGN_CASES],
)
def test_string_to_sign_follows_the_aws_layout(fields: dict, expected: str) -> None:
    assert string_to_sign(_envelope(**fields)) == expected.encode()


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"Type": "Nope"}, "SNS Type"),
        ({"Type": "Notification", "Message": {"a": 1}}, "Message"),
        ({"Type": "Notification", "Message": "m"}, "MessageId"),
        (
            {
                "Type": "SubscriptionConfirmation",
                "Message": "m",
                "MessageId": "1",
                "TopicArn": TOPIC,
                "Timestamp": "t",
                "SignatureVersion": "1",
                "Signature": "s",
                "SigningCertURL": "https://sns.us-east-1.amazonaws.com/c.pem",
            },
            "SubscribeURL",
        ),
    ],
)
def test_malformed_envelopes_are_invalid_payloads(doc: dict, reason: str) -> None:
    with pytest.raises(InvalidPayload, match=reason):
        parse_envelope(doc)


# --- RSA verification ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("name", ["alarm.txt", "ok.txt", "subscription_confirmation.txt"])
def test_signed_fixtures_verify_with_both_versions(
    identity: SigningIdentity, name: str, version: str
) -> None:
    envelope = parse_envelope(identity.sign(load_envelope(name), version))
    verify_with_certificate(envelope, identity.cert)  # raises on failure


@pytest.mark.parametrize(
    "tamper",
    [
        {"Message": '{"AlarmName":"other","NewStateValue":"OK"}'},
        {"Subject": "OK: something else"},
        {"MessageId": "another-id"},
        {"Timestamp": "2026-11-27T08:42:53.457Z"},
        {"TopicArn": "arn:aws:sns:us-east-1:999999999999:evil"},
    ],
    ids=["message", "subject", "message-id", "timestamp", "topic"],
)
def test_any_tampered_signed_field_fails(identity: SigningIdentity, tamper: dict) -> None:
    signed = identity.sign(load_envelope("alarm.txt"), "2")
    with pytest.raises(InvalidSignature, match="does not match"):
        verify_with_certificate(parse_envelope({**signed, **tamper}), identity.cert)


def test_version_1_signature_does_not_pass_as_version_2(identity: SigningIdentity) -> None:
    signed = identity.sign(load_envelope("alarm.txt"), "1")
    with pytest.raises(InvalidSignature):
        verify_with_certificate(parse_envelope({**signed, "SignatureVersion": "2"}), identity.cert)


def test_signature_from_another_key_fails(identity: SigningIdentity) -> None:
    other = SigningIdentity()
    signed = other.sign(load_envelope("alarm.txt"), "2")
    with pytest.raises(InvalidSignature):
        verify_with_certificate(parse_envelope(signed), identity.cert)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"SignatureVersion": "3"}, "SignatureVersion"),
        ({"Signature": "not base64!!"}, "base64"),
    ],
)
def test_unusable_signatures_fail(identity: SigningIdentity, change: dict, reason: str) -> None:
    signed = identity.sign(load_envelope("alarm.txt"), "1")
    with pytest.raises(InvalidSignature, match=reason):
        verify_with_certificate(parse_envelope({**signed, **change}), identity.cert)


def test_a_non_rsa_certificate_is_refused() -> None:
    ec_identity = SigningIdentity(key_type="ec")
    envelope = _envelope()
    with pytest.raises(InvalidSignature, match="RSA"):
        verify_with_certificate(envelope, ec_identity.cert)


def test_cloudwatch_provider_hands_over_the_envelope_it_unwrapped(
    identity: SigningIdentity,
) -> None:
    body = orjson.dumps(identity.sign(load_envelope("alarm.txt"), "2"))
    parsed = PROVIDERS["cloudwatch"].parse({"content-type": "text/plain; charset=UTF-8"}, body)
    assert parsed.sns is not None and parsed.sns.kind == "notification"
    assert not parsed.sns.must_confirm
    verify_with_certificate(parsed.sns.envelope, identity.cert)
    assert [a.status for a in parsed.alerts] == ["firing"]


# --- the async entry points, without a network ---------------------------------------------------


async def test_unknown_topic_is_refused_before_any_fetch(identity: SigningIdentity) -> None:
    envelope = parse_envelope(identity.sign(load_envelope("alarm.txt")))
    fetcher = RecordingFetcher(identity.cert)
    with pytest.raises(InvalidSignature, match="not allowed"):
        await verify_sns(envelope, fetcher, ["arn:aws:sns:us-east-1:123456789012:other"])
    assert fetcher.calls == []


@pytest.mark.parametrize("allowed", [None, [], [TOPIC]])
async def test_allowed_or_unrestricted_topics_verify(
    identity: SigningIdentity, allowed: list[str] | None
) -> None:
    envelope = parse_envelope(identity.sign(load_envelope("alarm.txt")))
    fetcher = RecordingFetcher(identity.cert)
    await verify_sns(envelope, fetcher, allowed)
    assert fetcher.calls == [("fetch", envelope.signing_cert_url)]


async def test_confirmation_gets_the_subscribe_url_only_after_verifying(
    identity: SigningIdentity,
) -> None:
    signed = identity.sign(load_envelope("subscription_confirmation.txt"), "2")
    fetcher = RecordingFetcher(identity.cert)
    forged = parse_envelope({**signed, "Token": "forged-token"})
    with pytest.raises(InvalidSignature):
        await confirm_subscription(forged, fetcher, [TOPIC])
    assert [kind for kind, _ in fetcher.calls] == ["fetch"]

    fetcher.calls.clear()
    envelope = parse_envelope(signed)
    await confirm_subscription(envelope, fetcher, [TOPIC])
    assert fetcher.calls == [
        ("fetch", envelope.signing_cert_url),
        ("get", envelope.subscribe_url),
    ]


@pytest.mark.parametrize(
    ("age_seconds", "ok"), [(0, True), (3599, True), (3601, False), (-30, True)]
)
async def test_optional_age_window(
    long_lived_identity: SigningIdentity, age_seconds: int, ok: bool
) -> None:
    identity = long_lived_identity  # the fixture's Timestamp is in the past: dates cover it
    envelope = parse_envelope(identity.sign(load_envelope("alarm.txt")))
    sent = dt.datetime.fromisoformat(envelope.timestamp)
    now = sent + dt.timedelta(seconds=age_seconds)
    fetcher = RecordingFetcher(identity.cert)
    if ok:
        await verify_sns(envelope, fetcher, None, now=now, max_age_seconds=3600)
    else:
        with pytest.raises(InvalidSignature, match="older"):
            await verify_sns(envelope, fetcher, None, now=now, max_age_seconds=3600)
        assert fetcher.calls == []
    # Without a window the age is not checked at all.
    await verify_sns(envelope, fetcher, None, now=now + dt.timedelta(days=400))


async def test_confirm_refuses_a_notification(identity: SigningIdentity) -> None:
    envelope = parse_envelope(identity.sign(load_envelope("alarm.txt")))
    with pytest.raises(InvalidPayload):
        await confirm_subscription(envelope, RecordingFetcher(identity.cert))


# --- URL rules (pure) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
        "https://SNS.EU-WEST-1.AMAZONAWS.COM/x.pem",
        "https://sns.us-east-1.amazonaws.com:443/x.pem",
    ],
)
def test_sns_hosts_are_accepted(url: str) -> None:
    assert CertFetcher().check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
        "https://evil.example/sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com@evil.example/x.pem",
        "https://user:pw@sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us_east.amazonaws.com/x.pem",
        "https://sqs.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com:99999/x.pem",
        "ftp://sns.us-east-1.amazonaws.com/x.pem",
        "",
    ],
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidSignature):
        CertFetcher().check_url(url)


def test_host_pattern_is_configurable() -> None:
    fetcher = CertFetcher(host_pattern=r"^sns\.test$")
    assert fetcher.check_url("https://sns.test/c.pem")
    with pytest.raises(InvalidSignature):
        fetcher.check_url("https://sns.us-east-1.amazonaws.com/c.pem")
