"""Amazon SNS envelopes: parsing, RSA signature verification, subscription confirmation.

The pure part builds the string AWS signs (its key/value lines differ between Notification and
the two confirmation types). The I/O part, `CertFetcher`, fetches signing certificates over https
from hosts matching `CAUSEFLOW_SNS_CERT_HOST_PATTERN`, with a hard timeout and an in-memory cache
bounded in size and in age (`CAUSEFLOW_SNS_CERT_CACHE_SECONDS`). A certificate is used only
within its validity dates, checked at each verification. Every failure surfaces as
InvalidSignature (401), never as a hang or a 5xx.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver
from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from causeflow.ingest.providers.errors import InvalidPayload, InvalidSignature
from causeflow.ingest.providers.fields import opt_str

DEFAULT_CERT_HOST_PATTERN = r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"
DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_CACHE_SECONDS = 3600.0
DEFAULT_CACHE_SIZE = 64

SnsType = Literal["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]
SNS_TYPES: tuple[str, ...] = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")

# The fields AWS signs, in the order it signs them. Notification: Subject only when present.
_NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_KEYS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)

# SignatureVersion 1 is SHA1withRSA, 2 is SHA256withRSA (both PKCS#1 v1.5).
_SIGNATURE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


@dataclass(frozen=True)
class SnsEnvelope:
    """The JSON document SNS POSTs to an HTTP/S subscriber."""

    type: SnsType
    message_id: str
    topic_arn: str
    message: str
    timestamp: str
    signature_version: str
    signature: str
    signing_cert_url: str
    subject: str | None = None
    subscribe_url: str | None = None
    token: str | None = None
    unsubscribe_url: str | None = None


@dataclass(frozen=True)
class SnsAction:
    """What the ingest service must do with an SNS delivery before (or instead of) using it."""

    kind: Literal["notification", "subscription_confirmation", "unsubscribe_confirmation"]
    envelope: SnsEnvelope

    @property
    def must_confirm(self) -> bool:
        """True for SubscriptionConfirmation: call `confirm_subscription` (it verifies first)."""
        return self.kind == "subscription_confirmation"


def _field(doc: Mapping[str, Any], key: str, required: bool) -> str | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise InvalidPayload(f"SNS envelope field {key} must be a non-empty string")
    return value  # exact bytes matter for the signature: no stripping


def parse_envelope(doc: Mapping[str, Any]) -> SnsEnvelope:
    """Read an SNS envelope; InvalidPayload when a field the signature covers is missing."""
    kind = doc.get("Type")
    if kind not in SNS_TYPES:
        raise InvalidPayload(f"SNS Type must be one of {', '.join(SNS_TYPES)}")
    confirmation = kind != "Notification"
    message = doc.get("Message")
    if not isinstance(message, str):
        raise InvalidPayload("SNS envelope field Message must be a string")
    return SnsEnvelope(
        type=kind,  # type: ignore[arg-type]  # checked against SNS_TYPES above
        message_id=_field(doc, "MessageId", True) or "",
        topic_arn=_field(doc, "TopicArn", True) or "",
        message=message,
        timestamp=_field(doc, "Timestamp", True) or "",
        signature_version=_field(doc, "SignatureVersion", True) or "",
        signature=_field(doc, "Signature", True) or "",
        signing_cert_url=_field(doc, "SigningCertURL", True) or "",
        subject=None if confirmation else _field(doc, "Subject", False),
        subscribe_url=_field(doc, "SubscribeURL", confirmation),
        token=_field(doc, "Token", confirmation),
        unsubscribe_url=opt_str(doc, "UnsubscribeURL"),
    )


def action_for(envelope: SnsEnvelope) -> SnsAction:
    """The SnsAction matching the envelope's Type."""
    kinds = {
        "Notification": "notification",
        "SubscriptionConfirmation": "subscription_confirmation",
        "UnsubscribeConfirmation": "unsubscribe_confirmation",
    }
    return SnsAction(kind=kinds[envelope.type], envelope=envelope)  # type: ignore[arg-type]


def string_to_sign(envelope: SnsEnvelope) -> bytes:
    """The canonical `Key\\nValue\\n` lines AWS signs, exactly as its documentation builds them."""
    values = {
        "Message": envelope.message,
        "MessageId": envelope.message_id,
        "Subject": envelope.subject,
        "SubscribeURL": envelope.subscribe_url,
        "Timestamp": envelope.timestamp,
        "Token": envelope.token,
        "TopicArn": envelope.topic_arn,
        "Type": envelope.type,
    }
    keys = _NOTIFICATION_KEYS if envelope.type == "Notification" else _CONFIRMATION_KEYS
    lines = []
    for key in keys:
        value = values[key]
        if value is None:
            if key == "Subject":
                continue  # the only optional signed field
            raise InvalidSignature(f"SNS envelope has no {key} to verify")
        lines.append(f"{key}\n{value}\n")
    return "".join(lines).encode("utf-8")


def check_validity(certificate: x509.Certificate, now: datetime) -> None:
    """Refuse a signing certificate outside its validity dates at `now` (an aware time)."""
    if now < certificate.not_valid_before_utc:
        raise InvalidSignature("SNS signing certificate is not valid yet")
    if now > certificate.not_valid_after_utc:
        raise InvalidSignature("SNS signing certificate has expired")


def verify_with_certificate(envelope: SnsEnvelope, certificate: x509.Certificate) -> None:
    """Check the envelope's RSA signature with the signing certificate; pure."""
    algorithm = _SIGNATURE_HASHES.get(envelope.signature_version)
    if algorithm is None:
        raise InvalidSignature(f"unsupported SNS SignatureVersion {envelope.signature_version!r}")
    try:
        signature = base64.b64decode(envelope.signature, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignature("SNS Signature is not base64") from None
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise InvalidSignature("SNS signing certificate does not hold an RSA key")
    try:
        public_key.verify(signature, string_to_sign(envelope), padding.PKCS1v15(), algorithm())
    except CryptoInvalidSignature:
        raise InvalidSignature("SNS signature does not match the message") from None


class SnsHttp(Protocol):
    """What `verify_sns` and `confirm_subscription` need from the network."""

    async def fetch(self, url: str) -> x509.Certificate: ...

    async def get(self, url: str) -> bytes: ...


class CertFetcher:
    """Fetches SNS signing certificates (and confirmation URLs) over https from AWS hosts only.

    One instance per process: it owns an aiohttp session (created lazily inside the running loop)
    and a small LRU cache of certificates: at most `cache_size` of them, each kept
    `cache_seconds` after its download (0: not kept), so a certificate replaced at its URL is
    picked up. `ca_file` replaces the system trust store (tests); `resolver` lets tests send an
    AWS host name to 127.0.0.1 without touching /etc/hosts; `clock` (monotonic seconds) ages the
    cache.
    """

    def __init__(
        self,
        *,
        host_pattern: str = DEFAULT_CERT_HOST_PATTERN,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        ca_file: str | None = None,
        resolver: AbstractResolver | None = None,
        max_bytes: int = 64 * 1024,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._host_pattern = re.compile(host_pattern)
        self._timeout = timeout
        self._ca_file = ca_file
        self._resolver = resolver
        self._max_bytes = max_bytes
        self._cache_size = max(0, cache_size)
        self._cache_seconds = cache_seconds
        self._clock = clock
        # url -> (certificate, monotonic time after which it is fetched again), oldest use first
        self._cache: OrderedDict[str, tuple[x509.Certificate, float]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._session: aiohttp.ClientSession | None = None

    def check_url(self, url: str) -> str:
        """The URL if it is https on an allowed host, else InvalidSignature."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  # raises ValueError on a malformed port
        except ValueError:
            raise InvalidSignature("SNS URL is malformed") from None
        if parts.scheme != "https":
            raise InvalidSignature("SNS URLs must use https")
        if parts.username is not None or parts.password is not None:
            raise InvalidSignature("SNS URLs must not carry credentials")
        host = (parts.hostname or "").lower()
        if not self._host_pattern.fullmatch(host):
            raise InvalidSignature(f"SNS URL host {host!r} is not an allowed SNS host")
        return url

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            context = ssl.create_default_context(cafile=self._ca_file)
            connector = aiohttp.TCPConnector(ssl=context, resolver=self._resolver, limit=8)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self._session

    async def _download(self, url: str) -> bytes:
        self.check_url(url)
        # asyncio.timeout bounds the whole exchange even where aiohttp's own timeout would not
        # (a stalled TLS handshake, a trickling body).
        async with asyncio.timeout(self._timeout):
            async with self._get_session().get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise InvalidSignature(f"SNS host answered {response.status}")
                body = bytearray()
                async for chunk in response.content.iter_any():
                    body.extend(chunk)
                    if len(body) > self._max_bytes:
                        raise InvalidSignature("SNS response is too large")
                return bytes(body)

    async def get(self, url: str) -> bytes:
        """GET an https URL on an allowed host; any failure is InvalidSignature."""
        try:
            return await self._download(url)
        except InvalidSignature:
            raise
        except Exception as exc:  # noqa: BLE001  # any failure is a 401 (docs/reference.md §6.4)
            raise InvalidSignature(f"SNS request failed: {type(exc).__name__}") from exc

    def _cached(self, url: str) -> x509.Certificate | None:
        entry = self._cache.get(url)
        if entry is None:
            return None
        certificate, expires = entry
        if self._clock() >= expires:
            del self._cache[url]
            return None
        self._cache.move_to_end(url)
        return certificate

    def _keep(self, url: str, certificate: x509.Certificate) -> None:
        if self._cache_seconds <= 0 or self._cache_size == 0:
            return
        self._cache[url] = (certificate, self._clock() + self._cache_seconds)
        self._cache.move_to_end(url)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def fetch(self, url: str) -> x509.Certificate:
        """The signing certificate at the URL, from the cache while its entry is fresh."""
        cached = self._cached(url)
        if cached is not None:
            return cached
        self.check_url(url)  # refuse before allocating anything for a foreign URL
        lock = self._locks.setdefault(url, asyncio.Lock())
        try:
            async with lock:  # one download per URL even when many deliveries arrive at once
                cached = self._cached(url)
                if cached is not None:
                    return cached
                pem = await self.get(url)
                try:
                    certificate = x509.load_pem_x509_certificate(pem)
                except ValueError:
                    raise InvalidSignature("SNS signing certificate is not PEM") from None
                self._keep(url, certificate)
                return certificate
        finally:
            # Locks only de-duplicate concurrent downloads; dropping one early costs at most a
            # second download, keeping it would let failing URLs grow the dict without bound.
            self._locks.pop(url, None)

    async def close(self) -> None:
        """Close the HTTP session (the app's lifespan calls this at shutdown)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> CertFetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _check_topic(envelope: SnsEnvelope, allowed_topic_arns: Sequence[str] | None) -> None:
    # An empty or absent list means the tenant has not restricted topics.
    if allowed_topic_arns and envelope.topic_arn not in allowed_topic_arns:
        raise InvalidSignature(f"SNS topic {envelope.topic_arn!r} is not allowed for this tenant")


def check_age(envelope: SnsEnvelope, now: datetime, max_age_seconds: float) -> None:
    """Refuse an envelope whose signed Timestamp is older than the window (or unreadable).

    De-duplication by MessageId only lasts 24 h; past that, a captured message could be replayed
    unless its (signed) age is bounded. SNS retries keep the original Timestamp, so the window
    must outlast the topic's delivery-retry policy.
    """
    try:
        sent = datetime.fromisoformat(envelope.timestamp)
    except ValueError:
        raise InvalidSignature("SNS Timestamp is unreadable") from None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    if (now - sent).total_seconds() > max_age_seconds:
        raise InvalidSignature("SNS message is older than the accepted window")


async def verify_sns(
    envelope: SnsEnvelope,
    fetcher: SnsHttp,
    allowed_topic_arns: Sequence[str] | None,
    *,
    now: datetime | None = None,
    max_age_seconds: float | None = None,
) -> None:
    """Raise InvalidSignature unless the envelope is signed by SNS for an allowed topic.

    The signing certificate must be valid at `now` (the current time when None); with
    `max_age_seconds` the signed Timestamp must also be recent (see check_age).
    """
    _check_topic(envelope, allowed_topic_arns)
    if now is not None and max_age_seconds is not None:
        check_age(envelope, now, max_age_seconds)
    if envelope.signature_version not in _SIGNATURE_HASHES:
        raise InvalidSignature(f"unsupported SNS SignatureVersion {envelope.signature_version!r}")
    certificate = await fetcher.fetch(envelope.signing_cert_url)
    check_validity(certificate, now if now is not None else datetime.now(UTC))
    verify_with_certificate(envelope, certificate)


async def confirm_subscription(
    envelope: SnsEnvelope,
    fetcher: SnsHttp,
    allowed_topic_arns: Sequence[str] | None = None,
    *,
    now: datetime | None = None,
    max_age_seconds: float | None = None,
) -> None:
    """Verify a SubscriptionConfirmation, then GET its SubscribeURL (same host rule).

    Verification is part of this call, so the GET can never happen for a forged envelope.
    """
    if envelope.type != "SubscriptionConfirmation" or envelope.subscribe_url is None:
        raise InvalidPayload("not an SNS SubscriptionConfirmation")
    await verify_sns(
        envelope, fetcher, allowed_topic_arns, now=now, max_age_seconds=max_age_seconds
    )
    await fetcher.get(envelope.subscribe_url)
