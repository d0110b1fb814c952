"""Every JSON answer of the API ends with one newline (docs/reference.md §8), whichever part
builds it: the response class, the error handlers, the gateway's own refusals, the inbound
endpoint, and the bodies written by hand around stored envelopes. Replays stay byte-identical.
"""

from __future__ import annotations

import re

import orjson
import pytest

from causeflow_sdk.models import sample_data
from tests.support.inproc import Service, Tenant

pytestmark = pytest.mark.integration

STREAM = "/v1/notifications/stream"


def check_body(response, where: str) -> None:
    assert response.headers["content-type"].startswith("application/json"), where
    body = response.content
    assert body.endswith(b"\n") and not body.endswith(b"\n\n"), f"{where}: {body[-60:]!r}"
    assert b"\n" not in body[:-1], where  # one document on one line, then the newline
    orjson.loads(body)
    assert int(response.headers["content-length"]) == len(body), where


def caller_for(path: str, service: Service, tenant: Tenant) -> dict[str, str]:
    if path.startswith("/v1/tenants"):
        token = service.ctx.tokens.mint_platform_admin(now=service.ctx.clock.now(), ttl=600)
        return {"Authorization": f"Bearer {token}"}
    if path.startswith("/v1/webhooks/"):
        return {"X-API-Key": tenant.ingest_key}
    return tenant.admin_headers


async def test_every_route_of_the_route_table_answers_json_with_a_final_newline(
    sqlite_service: Service,
):
    service = sqlite_service
    tenant = await service.tenant("acme")
    table = (await service.client.get("/openapi.json")).json()["paths"]
    checked: list[tuple[str, str, int]] = []
    for path, operations in table.items():
        for method in operations:
            if path == STREAM:
                continue  # Server-Sent Events, not JSON (its errors are checked below)
            url = re.sub(r"\{tenantId\}", tenant.id, path)
            url = re.sub(r"\{[^}]+\}", "x_nope", url)
            body = {"json": {}} if method in ("post", "put", "patch") else {}
            response = await service.client.request(
                method.upper(), url, headers=caller_for(path, service, tenant), **body
            )
            if response.status_code == 204:
                assert response.content == b""
                continue
            check_body(response, f"{method.upper()} {path} ({response.status_code})")
            checked.append((method, path, response.status_code))
    assert len(checked) >= 40, checked
    assert {status for *_, status in checked} >= {200, 201, 404, 422}


async def test_hand_built_bodies_and_errors_end_with_a_newline(
    sqlite_service: Service,
):
    service = sqlite_service
    client = service.client
    tenant = await service.tenant("acme")
    event = {"event": "incident.created", "data": sample_data("incident.created")}
    posted = await client.post("/v1/events", headers=tenant.key_headers, json=event)
    assert posted.status_code == 201
    check_body(posted, "POST /v1/events")
    page = await client.get("/v1/events", headers=tenant.key_headers)
    check_body(page, "GET /v1/events")
    # the envelope itself is unchanged: the log's bytes, then the newline
    assert posted.content[:-1] in page.content
    answers = {
        "no credential (gateway)": await client.get("/v1/events"),
        "bad key (gateway)": await client.get("/v1/events", headers={"X-API-Key": "cflo_x"}),
        "unknown route": await client.get("/v1/nothing-here", headers=tenant.key_headers),
        "method not allowed": await client.put("/v1/events", headers=tenant.key_headers),
        "validation": await client.post("/v1/events", headers=tenant.key_headers, json={}),
        "not JSON": await client.post("/v1/events", headers=tenant.key_headers, content=b"{nope"),
        "stream filter": await client.get(
            STREAM, headers=tenant.key_headers, params={"events": "no.such"}
        ),
        "inbound accepted": await client.post(
            f"/v1/webhooks/{tenant.id}/custom",
            headers={"X-API-Key": tenant.ingest_key},
            json={"externalId": "disk", "title": "Disk", "status": "firing"},
        ),
        "inbound refused": await client.post(
            f"/v1/webhooks/{tenant.id}/custom", json={"externalId": "disk"}
        ),
        "healthz": await client.get("/healthz"),
        "readyz": await client.get("/readyz"),
    }
    for where, response in answers.items():
        assert response.status_code != 500, where
        check_body(response, where)
    assert answers["inbound accepted"].status_code == 202
    assert answers["no credential (gateway)"].status_code == 401


async def test_idempotent_replay_is_byte_identical_newline_included(
    sqlite_service: Service,
):
    service = sqlite_service
    tenant = await service.tenant("acme")
    headers = {**tenant.admin_headers, "Idempotency-Key": "same-one"}
    body = {"name": "ci", "scopes": ["events:read"]}
    first = await service.client.post("/v1/api-keys", headers=headers, json=body)
    again = await service.client.post("/v1/api-keys", headers=headers, json=body)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true"
    check_body(first, "first")
    check_body(again, "replay")
    assert again.content == first.content
    event = {"event": "incident.created", "data": sample_data("incident.created")}
    headers = {**tenant.key_headers, "Idempotency-Key": "event-one"}
    first = await service.client.post("/v1/events", headers=headers, json=event)
    again = await service.client.post("/v1/events", headers=headers, json=event)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.content == first.content and first.content.endswith(b"}\n")
