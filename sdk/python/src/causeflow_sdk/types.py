"""Typed views of the API's resources as the client library returns them.

Field names are the wire's (camelCase), so a model reads like the JSON the docs show. Fields
the service adds later are kept (`extra="allow"`) rather than refused: schemas grow additively.
Events are `causeflow_sdk.models.Envelope`, the model the server itself uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, NotRequired, TypedDict, TypeVar

from pydantic import BaseModel, ConfigDict

from causeflow_sdk.models import Envelope

T = TypeVar("T")

DeliveryStatus = Literal["pending", "succeeded", "failed", "cancelled"]


class BatchEvent(TypedDict):
    """One event of `events.publish_batch`: the fields of a single publish."""

    event: str
    data: dict[str, Any]
    test: NotRequired[bool]


class Resource(BaseModel):
    """Base of every resource model: wire names, unknown fields kept."""

    model_config = ConfigDict(extra="allow")


class Subscription(Resource):
    id: str
    url: str
    events: list[str]
    type: str = "webhook"  # or a broker: "redis", "nats", "rabbitmq", "mqtt"
    options: dict[str, Any] | None = None  # the broker type's settings
    description: str | None = None
    filter: dict[str, Any] | None = None
    headers: dict[str, str] = {}
    enabled: bool = True
    disabledReason: str | None = None
    firstFailureAt: str | None = None
    rateLimitPerSecond: int | None = None
    ordering: str = "unordered"
    orderingKey: str | None = None
    createdAt: str
    updatedAt: str
    # the client certificate ({subject, issuer, notAfter, fingerprintSha256}) and the delivery
    # auth ({type, tokenUrl, clientId}) as reads show them; None when unset
    tls: dict[str, Any] | None = None
    auth: dict[str, Any] | None = None


class SubscriptionWithSecret(Subscription):
    """A subscription as created: the only time its signing secret is shown."""

    secret: str


class RotatedSecret(SubscriptionWithSecret):
    previousSecretExpiresAt: str | None = None


class Delivery(Resource):
    id: str
    subscriptionId: str
    eventId: str
    eventType: str
    status: DeliveryStatus
    attempts: int
    nextAttemptAt: str | None = None
    lastStatusCode: int | None = None
    lastError: str | None = None
    test: bool = False
    sequence: int | None = None
    createdAt: str
    updatedAt: str


class Message(Resource):
    """One event a subscription matched, by its sequence, with its delivery's state."""

    sequence: int
    deliveryId: str
    eventId: str
    eventType: str
    status: DeliveryStatus
    attempts: int
    lastStatusCode: int | None = None
    lastError: str | None = None
    createdAt: str
    event: dict[str, Any] | None = None


class Attempt(Resource):
    id: str
    createdAt: str
    statusCode: int | None = None
    latencyMs: int | None = None
    error: str | None = None
    responseBody: str | None = None


class DeliveryDetail(Delivery):
    attemptLog: list[Attempt] = []


class Incident(Resource):
    id: str
    title: str
    severity: str
    status: str
    source: str
    description: str | None = None
    fingerprint: str | None = None
    service: str | None = None
    environment: str | None = None
    alertCount: int = 0
    createdAt: str
    updatedAt: str
    resolvedAt: str | None = None


class Alert(Resource):
    id: str
    provider: str
    fingerprint: str
    status: str
    title: str
    severity: str


class IncidentDetail(Incident):
    alerts: list[Alert] = []
    events: list[Envelope] = []


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: its items and the cursor of the next page (None on the last)."""

    items: list[T]
    cursor: str | None = None
    count: int = field(default=0)

    @property
    def has_more(self) -> bool:
        return self.cursor is not None
