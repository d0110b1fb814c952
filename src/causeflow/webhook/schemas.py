"""Wire models of the webhook subscription and delivery endpoints (docs/reference.md §5.1).

Request models check shapes only; the rules that need the catalog, the SSRF policy or the
database (event names, URL, header names, caps) live in `webhook.rules` and `webhook.service`.
A subscription's header values are never shown: reads carry each name with `REDACTED`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from causeflow.api.fields import NO_NUL

DeliveryStatus = Literal["pending", "succeeded", "failed", "cancelled"]
Ordering = Literal["ordered", "unordered"]
DestinationType = Literal["webhook", "redis", "nats", "rabbitmq", "mqtt"]
_TYPE = (
    "where deliveries go: webhook (an HTTP POST to url) or a broker (redis, nats, rabbitmq, "
    "mqtt) the envelope is published to, with the same signature headers (docs/destinations.md)"
)
_OPTIONS = (
    "the broker type's settings: redis {stream, maxLen?}; nats {subject, stream?}; rabbitmq "
    "{exchange, routingKey}; mqtt {topic, qos: 1|2}; null for webhooks"
)
_URL = (
    "https URL of a webhook, or the broker URL (redis://, rediss://, nats://, tls://, amqp://, "
    "amqps://, mqtt://, mqtts://); credentials in it are write-only and read back as ****"
)
_ORDERING = (
    "ordered: a delivery is sent only once every earlier one (by sequence) of its lane has "
    "succeeded or failed for good; applies to the events matched after the change"
)
_ORDERING_KEY = (
    "a dotted path into the event's data (as filter keys): one ordered lane per value; "
    "events without it share one lane"
)
REDACTED = "<redacted>"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- egress: client certificate and delivery auth (write-only secrets) ------------------------

_PEM_MAX = 64 * 1024


class ClientTlsWrite(_Strict):
    """A client certificate the deliveries present (mTLS); the key is never shown again."""

    clientCertificate: str = Field(
        min_length=1, max_length=_PEM_MAX, description="PEM; the leaf first, then intermediates"
    )
    clientKey: str = Field(
        min_length=1, max_length=_PEM_MAX, description="PEM private key, unencrypted"
    )


class BearerAuthWrite(_Strict):
    type: Literal["bearer"]
    token: str = Field(min_length=1, max_length=4096, description="sent as Authorization: Bearer")


class OAuth2AuthWrite(_Strict):
    """OAuth2 client credentials: a token is fetched from `tokenUrl` and sent as Bearer."""

    type: Literal["oauth2"]
    tokenUrl: str = Field(min_length=1, max_length=2048)
    clientId: str = Field(min_length=1, max_length=500)
    clientSecret: str = Field(min_length=1, max_length=2000)
    scope: str | None = Field(default=None, max_length=1000)
    audience: str | None = Field(default=None, max_length=1000)


DeliveryAuthWrite = Annotated[BearerAuthWrite | OAuth2AuthWrite, Field(discriminator="type")]


class ClientTlsRead(BaseModel):
    subject: str
    issuer: str
    notAfter: str = Field(description="RFC 3339 time the certificate expires")
    fingerprintSha256: str = Field(description="SHA-256 of the leaf certificate (DER), hex")


class DeliveryAuthRead(BaseModel):
    type: Literal["bearer", "oauth2"]
    tokenUrl: str | None
    clientId: str | None


_TLS = "client certificate presented to the receiver; write-only key, null removes it"
_AUTH = "how deliveries authenticate (bearer or oauth2); write-only secrets, null removes it"


class SubscriptionCreate(_Strict):
    url: str = Field(min_length=1, max_length=2048, description=_URL)
    type: DestinationType = Field(default="webhook", description=_TYPE)
    options: dict[str, Any] | None = Field(default=None, description=_OPTIONS)
    events: list[str] = Field(min_length=1, max_length=100)
    secret: str | None = Field(default=None, max_length=500)
    description: str | None = Field(default=None, max_length=1000, pattern=NO_NUL)
    enabled: bool = True
    filter: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    rateLimitPerSecond: int | None = Field(default=None, ge=1, le=100_000)
    ordering: Ordering = Field(default="unordered", description=_ORDERING)
    orderingKey: str | None = Field(default=None, max_length=100, description=_ORDERING_KEY)
    # egress
    tls: ClientTlsWrite | None = Field(default=None, description=_TLS)
    auth: DeliveryAuthWrite | None = Field(default=None, description=_AUTH)


class SubscriptionUpdate(_Strict):
    """Only the fields sent change; `null` clears description, filter, headers and the rate.

    A header sent with the value `<redacted>` keeps the value it already has, so a client can
    send back what it read; so does a broker URL's `****` keep its stored credentials.
    """

    url: str | None = Field(default=None, min_length=1, max_length=2048, description=_URL)
    type: DestinationType | None = Field(default=None, description=_TYPE)
    options: dict[str, Any] | None = Field(default=None, description=_OPTIONS)
    events: list[str] | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=1000, pattern=NO_NUL)
    enabled: bool | None = None
    filter: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    rateLimitPerSecond: int | None = Field(default=None, ge=1, le=100_000)
    ordering: Ordering | None = Field(default=None, description=_ORDERING)
    orderingKey: str | None = Field(default=None, max_length=100, description=_ORDERING_KEY)
    # egress
    tls: ClientTlsWrite | None = Field(default=None, description=_TLS)
    auth: DeliveryAuthWrite | None = Field(default=None, description=_AUTH)


class SecretRotate(_Strict):
    secret: str | None = Field(default=None, max_length=500)


class TestDeliveryRequest(_Strict):
    event: str = Field(default="incident.created", min_length=1, max_length=100)


class DeliveryWindow(_Strict):
    since: str = Field(min_length=1, max_length=64, description="RFC 3339 time")
    until: str | None = Field(default=None, min_length=1, max_length=64)
    eventTypes: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="only these event types (names or `family.*` patterns)",
    )
    incidentId: str | None = Field(
        default=None, min_length=1, max_length=64, description="only this incident's events"
    )


class SubscriptionRead(BaseModel):
    id: str
    url: str = Field(description="as configured, with any password (or token) shown as ****")
    type: DestinationType
    options: dict[str, Any] | None
    description: str | None
    events: list[str]
    filter: dict[str, Any] | None
    headers: dict[str, str] = Field(description=f"header names; every value reads {REDACTED!r}")
    enabled: bool
    disabledReason: str | None
    firstFailureAt: str | None
    rateLimitPerSecond: int | None
    ordering: Ordering
    orderingKey: str | None
    createdAt: str
    updatedAt: str
    # egress
    tls: ClientTlsRead | None = None
    auth: DeliveryAuthRead | None = None


class SubscriptionCreated(SubscriptionRead):
    secret: str = Field(description="the signing secret; shown only in this response")


class SecretRotated(SubscriptionCreated):
    previousSecretExpiresAt: str | None = Field(
        description="until when the previous secret keeps signing alongside"
    )


class SubscriptionPage(BaseModel):
    items: list[SubscriptionRead]
    cursor: str | None
    count: int


class DeliveryRead(BaseModel):
    id: str
    subscriptionId: str
    eventId: str
    eventType: str
    status: DeliveryStatus
    attempts: int = Field(description="number of HTTP attempts made so far")
    nextAttemptAt: str | None
    lastStatusCode: int | None
    lastError: str | None
    test: bool = Field(description="a test delivery (POST …/test), not an event of the log")
    sequence: int | None = Field(
        description="the k-th event matched by its subscription (1-based, no gaps); null for "
        "test deliveries and replays"
    )
    createdAt: str
    updatedAt: str


class AttemptRead(BaseModel):
    id: str
    createdAt: str
    statusCode: int | None
    latencyMs: int | None
    error: str | None
    responseBody: str | None


class DeliveryDetail(DeliveryRead):
    attemptLog: list[AttemptRead] = Field(description="the HTTP attempts, oldest first")


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    cursor: str | None
    count: int


class MessageRead(BaseModel):
    sequence: int = Field(description="the k-th event the subscription matched")
    deliveryId: str
    eventId: str
    eventType: str
    status: DeliveryStatus
    attempts: int
    lastStatusCode: int | None
    lastError: str | None
    createdAt: str
    event: dict[str, Any] | None = Field(
        description="the envelope as delivered; null once the event left the log (retention)"
    )


class MessagePage(BaseModel):
    items: list[MessageRead]
    cursor: str | None
    count: int


class ScheduledCount(BaseModel):
    scheduled: int = Field(description="how many deliveries were scheduled")


class LatencyRead(BaseModel):
    p50: int | None = Field(description="median latency of the attempts, ms")
    p95: int | None


class AttemptErrorRead(BaseModel):
    at: str
    statusCode: int | None
    error: str | None


class WindowStats(BaseModel):
    attempts: int
    succeeded: int = Field(description="attempts answered with a 2xx (or a broker's ack)")
    failed: int = Field(description="every other attempt: another status, a timeout, a refusal")
    successRate: float | None = Field(description="succeeded / attempts; null without attempts")
    latencyMs: LatencyRead
    lastError: AttemptErrorRead | None = Field(description="the newest failed attempt in it")


class BacklogRead(BaseModel):
    pending: int = Field(description="deliveries still to be made")
    oldestAgeSeconds: float | None = Field(description="age of the oldest pending delivery")


class SeriesBucket(BaseModel):
    start: str
    succeeded: int
    failed: int


class SeriesRead(BaseModel):
    bucketSeconds: int
    buckets: list[SeriesBucket] = Field(description="the last day, oldest first")


class SubscriptionStats(BaseModel):
    subscriptionId: str
    generatedAt: str
    lastHour: WindowStats
    lastDay: WindowStats
    backlog: BacklogRead
    consecutiveFailures: int = Field(description="failed attempts since the last success")
    enabled: bool
    failingSince: str | None = Field(description="when its failure window opened (firstFailureAt)")
    autoDisableAfter: str | None = Field(
        description="from this time the next delivery that uses up its retries disables it"
    )
    series: SeriesRead
