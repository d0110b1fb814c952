"""CauseFlow client library: the API, the event stream, and webhook verification.

    from causeflow.sdk import AsyncClient, Client, StreamReset, verify

Imports nothing of the server: only `causeflow.models` (the shared event models), the
standard library, aiohttp, orjson and pydantic.
"""

from causeflow.models import Envelope
from causeflow.sdk.client import AsyncClient
from causeflow.sdk.errors import (
    CauseFlowAPIError,
    CauseFlowConnectionError,
    CauseFlowError,
    WebhookVerificationError,
)
from causeflow.sdk.resources import UNSET
from causeflow.sdk.stream import EventStream, RawEvent, StreamReset
from causeflow.sdk.sync import Client, SyncEventStream
from causeflow.sdk.types import (
    Attempt,
    Delivery,
    DeliveryDetail,
    Incident,
    IncidentDetail,
    Page,
    RotatedSecret,
    Subscription,
    SubscriptionWithSecret,
)
from causeflow.sdk.webhooks import verify, verify_signature

__all__ = [
    "UNSET",
    "AsyncClient",
    "Attempt",
    "CauseFlowAPIError",
    "CauseFlowConnectionError",
    "CauseFlowError",
    "Client",
    "Delivery",
    "DeliveryDetail",
    "Envelope",
    "EventStream",
    "Incident",
    "IncidentDetail",
    "Page",
    "RawEvent",
    "RotatedSecret",
    "StreamReset",
    "Subscription",
    "SubscriptionWithSecret",
    "SyncEventStream",
    "WebhookVerificationError",
    "verify",
    "verify_signature",
]
