"""One incident through its whole life against a real `causeflow serve` (SQLite).

An Alertmanager alert opens it; the investigation engine reports progress and completion; a
remediation that needs approval is proposed, approved and executed; the alert resolves. An SSE
client sees exactly that sequence of events in order, a webhook receiver gets the same events
with identical bodies (signed), and `GET /v1/incidents/{id}` shows the same timeline.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from causeflow_sdk.models import validate_data
from tests.support.processes import Deployment
from tests.support.receiver import Receiver
from tests.support.sse import SseEvent, SseStream

pytestmark = pytest.mark.process

FIXTURES = Path(__file__).resolve().parents[1] / "support/fixtures/providers/alertmanager"

EXPECTED = [
    ("incident.created", None),
    ("investigation.progress", None),
    ("incident.status_changed", ("open", "investigating")),
    ("investigation.completed", None),
    ("remediation.proposed", None),
    ("approval.requested", None),
    ("incident.status_changed", ("investigating", "awaiting_approval")),
    ("approval.resolved", None),
    ("remediation.approved", None),
    ("incident.status_changed", ("awaiting_approval", "remediating")),
    ("remediation.executed", None),
    ("incident.status_changed", ("remediating", "resolved")),
]


def alert(status: str) -> dict[str, Any]:
    """One Alertmanager alert (the resolved fixture, re-marked as firing when asked)."""
    payload = orjson.loads((FIXTURES / "resolved.json").read_bytes())
    payload = copy.deepcopy(payload)
    payload["status"] = status
    payload["alerts"][0]["status"] = status
    if status == "firing":
        payload["alerts"][0]["endsAt"] = "0001-01-01T00:00:00Z"
    return payload  # type: ignore[no-any-return]


@pytest.fixture
def deployment(tmp_path: Path):
    with Deployment(
        tmp_path,
        env={
            "CAUSEFLOW_WEBHOOK_ALLOW_HTTP": "true",
            "CAUSEFLOW_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
            "CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0",
        },
    ) as dep:
        yield dep


class Api:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    async def call(
        self, method: str, path: str, headers: dict[str, str], body: Any = None, status: int = 200
    ) -> Any:
        async with self.http.request(method, self.base + path, headers=headers, json=body) as resp:
            text = await resp.text()
            assert resp.status == status, f"{method} {path}: {resp.status} {text}"
            return orjson.loads(text) if text else None


async def test_incident_lifecycle(deployment: Deployment):
    server = deployment.add_server()
    tenant = deployment.create_tenant("acme")
    tenant_id = tenant["tenantId"]
    admin = {"Authorization": f"Bearer {tenant['adminToken']}"}
    ingest = {"X-API-Key": tenant["ingestKey"]}

    async with Receiver() as receiver, aiohttp.ClientSession() as http:
        api = Api(http, server.base_url)
        sub = await api.call(
            "POST",
            "/v1/webhook-subscriptions",
            admin,
            {"url": receiver.url_for("/hook"), "events": ["*"]},
            status=201,
        )
        made = await api.call(
            "POST",
            "/v1/api-keys",
            admin,
            {"name": "engine", "scopes": ["events:publish"]},
            status=201,
        )
        engine = {"X-API-Key": made["key"]}

        async with SseStream(http, server.base_url + "/v1/notifications/stream", admin) as sse:
            # 1. the alert opens the incident
            opened = await api.call(
                "POST", f"/v1/webhooks/{tenant_id}/alertmanager", ingest, alert("firing"), 202
            )
            assert [a["action"] for a in opened["alerts"]] == ["created"]
            incident_id = opened["alerts"][0]["incidentId"]

            # 2. the engine investigates
            for event_type, data in (
                (
                    "investigation.progress",
                    {
                        "incidentId": incident_id,
                        "message": "probe failures started with deploy 4711",
                        "agentName": "deploy-correlator",
                        "stepIndex": 0,
                        "totalSteps": 2,
                    },
                ),
                (
                    "investigation.completed",
                    {
                        "incidentId": incident_id,
                        "rootCause": "deploy 4711 broke the checkout health check",
                        "confidence": 0.9,
                        "recommendedActions": ["roll back deploy 4711"],
                    },
                ),
            ):
                await api.call(
                    "POST", "/v1/events", engine, {"event": event_type, "data": data}, 201
                )

            # 3. it proposes a remediation that needs approval; an admin grants it
            rem = await api.call(
                "POST",
                f"/v1/incidents/{incident_id}/remediations",
                engine,
                {
                    "title": "roll back deploy 4711",
                    "steps": ["kubectl rollout undo deploy/checkout"],
                    "requiresApproval": True,
                },
                201,
            )
            pending = await api.call("GET", "/v1/notifications/approvals/pending", admin)
            assert [a["id"] for a in pending["items"]] == [rem["approval"]["id"]]
            await api.call(
                "POST",
                f"/v1/notifications/approvals/{rem['approval']['id']}/respond",
                admin,
                {"decision": "approved", "notes": "go"},
            )

            # 4. the engine runs it; the monitoring source resolves the alert
            await api.call(
                "POST",
                f"/v1/remediations/{rem['id']}/executed",
                engine,
                {"outcome": "success", "durationMs": 8300},
            )
            closed = await api.call(
                "POST", f"/v1/webhooks/{tenant_id}/alertmanager", ingest, alert("resolved"), 202
            )
            assert closed["alerts"][0]["action"] == "resolved"
            assert closed["alerts"][0]["incidentId"] == incident_id

            seen: list[SseEvent] = []
            async with asyncio.timeout(15):
                while len(seen) < len(EXPECTED):
                    event = await sse.next(timeout=None)
                    if event.event != "ping":
                        seen.append(event)

        # the stream: exactly this sequence, in order, each a valid envelope of this tenant
        assert [(e.event, e.json()["event"]) for e in seen] == [(t, t) for t, _ in EXPECTED]
        envelopes = [e.json() for e in seen]
        for envelope, sse_event, (event_type, move) in zip(envelopes, seen, EXPECTED, strict=True):
            assert sse_event.id == envelope["id"]
            assert envelope["tenantId"] == tenant_id
            assert envelope["data"]["incidentId"] == incident_id
            validate_data(event_type, envelope["data"])
            if move is not None:
                data = envelope["data"]
                assert (data["previousStatus"], data["newStatus"]) == move

        # the webhook receiver: the same events, the same bytes, signed with the secret
        delivered = await receiver.wait_for(len(EXPECTED), timeout=15, path="/hook")
        await asyncio.sleep(0.3)  # nothing more arrives
        assert len(receiver.requests_for("/hook")) == len(EXPECTED)
        assert {r.body.decode() for r in delivered} == {e.data for e in seen}
        for request in delivered:
            expected_sig = hmac.new(
                sub["secret"].encode(), request.body, hashlib.sha256
            ).hexdigest()
            assert request.headers["X-CauseFlow-Signature"] == f"sha256={expected_sig}"
            assert request.headers["X-CauseFlow-Event"] == request.json()["event"]

        # the log and the incident's own timeline tell the same story
        log = await api.call("GET", "/v1/events", admin)
        assert [e["id"] for e in log["items"] if e["event"] != "tenant.created"] == [
            e["id"] for e in envelopes
        ]
        detail = await api.call("GET", f"/v1/incidents/{incident_id}", admin)
        assert detail["status"] == "resolved"
        assert detail["events"] == envelopes
        remediation = await api.call("GET", f"/v1/remediations/{rem['id']}", admin)
        assert (remediation["status"], remediation["outcome"]) == ("executed", "success")
