"""Two real `causeflow serve` processes on one PostgreSQL database receive the same alert at the
same moment: one incident opens, every copy names it, and one `incident.created` is logged."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.support.pg import fresh_database, require_pg
from tests.support.processes import Deployment

pytestmark = pytest.mark.process

ROUNDS = 4
COPIES = 16


async def storm(urls: list[str], tenant: dict[str, str]) -> list[list[dict]]:
    headers = {"X-API-Key": tenant["ingestKey"], "Content-Type": "application/json"}
    rounds = []
    async with aiohttp.ClientSession() as session:

        async def send(url: str, body: bytes) -> dict:
            async with session.post(url, data=body, headers=headers) as resp:
                assert resp.status == 202, await resp.text()
                return orjson.loads(await resp.read())

        for n in range(ROUNDS):
            body = orjson.dumps({"externalId": f"storm-{n}", "title": "Queue backlog"})
            answers = await asyncio.gather(
                *(send(urls[i % len(urls)], body) for i in range(COPIES))
            )
            rounds.append([a["alerts"][0] for a in answers])
    return rounds


def test_two_processes_open_one_incident(tmp_path: Path) -> None:
    require_pg()
    env = {"CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0", "CAUSEFLOW_INGEST_RATE_LIMIT_PER_MINUTE": "0"}
    with fresh_database() as url, Deployment(tmp_path, url, env=env) as deployment:
        deployment.migrate()
        servers = [deployment.add_server(), deployment.add_server()]
        tenant = deployment.create_tenant("acme")
        urls = [f"{s.base_url}/v1/webhooks/{tenant['tenantId']}/custom" for s in servers]

        rounds = asyncio.run(storm(urls, tenant))

        incident_ids = set()
        for answers in rounds:
            assert sorted(a["action"] for a in answers) == ["attached"] * (COPIES - 1) + ["created"]
            ids = {a["incidentId"] for a in answers}
            assert len(ids) == 1
            incident_ids |= ids
        assert len(incident_ids) == ROUNDS

        async def logged() -> list[str]:
            admin = {"Authorization": f"Bearer {tenant['adminToken']}"}
            async with aiohttp.ClientSession() as session:
                async with session.get(
                    f"{servers[1].base_url}/v1/events",
                    params={"event": "incident.created", "limit": "100"},
                    headers=admin,
                ) as resp:
                    items = (await resp.json())["items"]
            return [e["data"]["incidentId"] for e in items]

        assert sorted(asyncio.run(logged())) == sorted(incident_ids)


def test_a_refused_delivery_is_logged_with_its_query_key_redacted(tmp_path: Path) -> None:
    with Deployment(tmp_path) as deployment:
        deployment.migrate()
        server = deployment.add_server()
        tenant = deployment.create_tenant("acme")
        forged = "cflo_" + "0" * 64
        url = f"{server.base_url}/v1/webhooks/{tenant['tenantId']}/custom"

        async def refused() -> int:
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    url, params={"apiKey": forged}, json={"externalId": "x", "title": "t"}
                ) as resp:
                    return resp.status

        assert asyncio.run(refused()) == 401
        deadline = time.monotonic() + 10
        while " refused: " not in server.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = [line for line in server.log_text().splitlines() if " refused: " in line]
        assert len(lines) == 1, server.log_text()[-2000:]
        assert "INFO causeflow.ingest" in lines[0] and "401 invalid_api_key" in lines[0]
        assert "apiKey=***" in lines[0] and forged not in server.log_text()
