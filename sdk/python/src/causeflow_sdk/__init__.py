"""CauseFlow client library: the API, the event stream, and webhook verification.

    from causeflow_sdk import AsyncClient, Client, StreamReset, verify

Its own distribution (`pip install causeflow-sdk`), built from `sdk/python` of the server's
repository: the standard library, aiohttp, orjson and pydantic, and nothing of the server. The
event catalog (`causeflow_sdk.models`) lives here too; the server imports it from this package.
"""

from causeflow_sdk.client import AsyncClient
from causeflow_sdk.errors import (
    CauseFlowAPIError,
    CauseFlowConnectionError,
    CauseFlowError,
    WebhookVerificationError,
)
from causeflow_sdk.gaps import Gap, GapTracker
from causeflow_sdk.models import Envelope
from causeflow_sdk.resources import UNSET
from causeflow_sdk.stream import EventStream, RawEvent, StreamReset
from causeflow_sdk.sync import Client, SyncEventStream
from causeflow_sdk.types import (
    Attempt,
    BatchEvent,
    Delivery,
    DeliveryDetail,
    Incident,
    IncidentDetail,
    Message,
    Page,
    RotatedSecret,
    Subscription,
    SubscriptionWithSecret,
)
from causeflow_sdk.webhooks import verify, verify_signature

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "UNSET",
    "AsyncClient",
    "Attempt",
    "BatchEvent",
    "CauseFlowAPIError",
    "CauseFlowConnectionError",
    "CauseFlowError",
    "Client",
    "Delivery",
    "DeliveryDetail",
    "Envelope",
    "EventStream",
    "Gap",
    "GapTracker",
    "Incident",
    "IncidentDetail",
    "Message",
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
