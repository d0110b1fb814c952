"""`POST /v1/webhooks/{tenantId}/{provider}`: alerts from monitoring tools (docs/reference.md §6).

Thin: the raw body and lower-cased headers go to the service, which authenticates the key
itself, charges the request to the tenant's budget or to its client address's (see
`api.gateway.InboundBudget`), and answers 202 with what happened to each alert.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from causeflow.api.errors import failure_of
from causeflow.api.gateway import InboundBudget, Receive, Scope, Send, read_body, send_error
from causeflow.api.routing import JsonRoute
from causeflow.context import AppContext
from causeflow.ingest.providers.registry import PROVIDERS
from causeflow.ingest.service import InboundRequest, receive_alerts
from causeflow.jsonutil import json_body

router = APIRouter(tags=["inbound"], route_class=JsonRoute)


class AlertOutcome(BaseModel):
    fingerprint: str
    incidentId: str | None
    action: Literal["created", "attached", "resolved", "ignored"]


class AlertsAccepted(BaseModel):
    status: Literal["accepted"]
    provider: str
    alerts: list[AlertOutcome]


_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "text/plain": {"schema": {"type": "string"}, "description": "an SNS envelope"},
    },
}


@router.post(
    "/v1/webhooks/{tenant_id}/{provider}",
    status_code=202,
    response_model=AlertsAccepted,
    summary="Receive alerts from a monitoring tool",
    description=(
        f"`provider` is one of {', '.join(sorted(PROVIDERS))}. Authenticate with an API key of "
        "the tenant holding the `alerts:ingest` scope: `X-API-Key`, `Authorization: Bearer`, "
        "Basic auth (key as password) or `?apiKey=`."
    ),
    openapi_extra={"requestBody": _BODY},
)
async def receive(tenant_id: str, provider: str, request: Request) -> Response:
    # Requests through the gateway are answered by `answer_inbound`; this route declares the
    # endpoint in the OpenAPI document and serves the app without the gateway in front.
    ctx: AppContext = request.app.state.ctx
    headers = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]
    }
    inbound = _inbound(request.scope, headers, tenant_id, provider, await request.body())
    return Response(
        json_body(await receive_alerts(ctx, inbound)),
        status_code=202,
        media_type="application/json",
    )


def _inbound(
    scope: Scope, headers: dict[str, str], tenant_id: str, provider: str, body: bytes
) -> InboundRequest:
    query_string = scope.get("query_string", b"").decode("latin-1")
    return InboundRequest(tenant_id, provider, headers, query_string, body)


async def answer_inbound(
    ctx: AppContext,
    scope: Scope,
    receive: Receive,
    send: Send,
    headers: dict[str, str],
    tenant_id: str,
    provider: str,
) -> None:
    """`POST /v1/webhooks/{tenantId}/{provider}` as plain ASGI, called by the gateway (which
    has applied the body limit); the request is budgeted here, once its key has been checked."""
    raw, whole = await read_body(receive)
    if not whole:
        return  # the client went away
    budget = InboundBudget(ctx, scope)
    try:
        body = await receive_alerts(ctx, _inbound(scope, headers, tenant_id, provider, raw), budget)
    except Exception as exc:  # noqa: BLE001  # the error shape of docs/reference.md §8.7
        await send_error(send, failure_of(exc), budget.headers())
        return
    body = json_body(body)
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *budget.headers(),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
