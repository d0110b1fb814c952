"""Real processes: kill -9 of `causeflow serve` mid-flight loses nothing; two `causeflow worker`
processes on one PostgreSQL database never send a delivery twice; SIGTERM hands leases back."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from causeflow_sdk.models import sample_data
from tests.support.pg import fresh_database, require_pg, run_sync
from tests.support.processes import Deployment
from tests.support.receiver import Hang, Ok, Slow, ThreadedReceiver

pytestmark = pytest.mark.process

ENV = {
    "CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0",
    "CAUSEFLOW_WEBHOOK_ALLOW_HTTP": "true",
    "CAUSEFLOW_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
    "CAUSEFLOW_WEBHOOK_RETRY_SCHEDULE": "0.2s,0.2s,0.2s,0.2s",
    "CAUSEFLOW_WEBHOOK_POLL_SECONDS": "0.2",
    "CAUSEFLOW_EVENT_POLL_SECONDS": "0.2",
    # a short lease (still longer than the request timeout) so a crash's leases run out soon
    "CAUSEFLOW_WEBHOOK_LEASE_SECONDS": "2",
    "CAUSEFLOW_WEBHOOK_TIMEOUT_SECONDS": "1",
}


def api(base_url: str, creds: dict[str, str]) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {creds['adminToken']}"},
        timeout=10,
    )


def subscribe(client: httpx.Client, url: str) -> dict[str, Any]:
    resp = client.post(
        "/v1/webhook-subscriptions", json={"url": url, "events": ["incident.created"]}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


def publish(client: httpx.Client, count: int) -> None:
    for _ in range(count):
        resp = client.post(
            "/v1/events",
            json={"event": "incident.created", "data": sample_data("incident.created")},
        )
        assert resp.status_code == 201, resp.text


def statuses(client: httpx.Client, sub_id: str) -> Counter[str]:
    seen: Counter[str] = Counter()
    cursor = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        resp = client.get(f"/v1/webhook-subscriptions/{sub_id}/deliveries", params=params)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        seen.update(item["status"] for item in page["items"])
        cursor = page["cursor"]
        if not cursor:
            return seen


def wait_statuses(
    client: httpx.Client, sub_id: str, expected: dict[str, int], timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while (seen := statuses(client, sub_id)) != expected:
        assert time.monotonic() < deadline, f"{dict(seen)} != {expected}"
        time.sleep(0.1)


def test_kill9_mid_flight_then_restart_delivers_everything(tmp_path: Path) -> None:
    with Deployment(tmp_path, env=ENV) as deployment, ThreadedReceiver() as receiver:
        receiver.set_behavior("/hook", Slow(0.3))
        creds = deployment.create_tenant("acme")
        server = deployment.add_server()
        with api(server.base_url, creds) as client:
            sub = subscribe(client, receiver.url_for("/hook"))
            publish(client, 40)
            # the first 16 (one host's slots) answered and recorded, the next ones in flight
            receiver.wait_for_sync(20, timeout=10)
            time.sleep(0.15)
            server.kill9()
            before = Counter(r.headers["webhook-id"] for r in receiver.requests)
        server.start()
        with api(server.base_url, creds) as client:
            wait_statuses(client, sub["id"], {"succeeded": 40})
        received = Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert len(received) == 40  # every delivery arrived
    again = {m for m, n in received.items() if n > 1}
    # only attempts that were in flight (or not yet recorded) at the crash were sent again;
    # those recorded before it were not
    assert again <= set(before)
    assert len(again) <= 16  # one host's slots
    assert len(again) < len(before)


def _pg_rows(url: str, sql: str) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return run_sync(run())


def test_two_postgresql_workers_never_double_send_and_sigterm_releases(tmp_path: Path) -> None:
    require_pg()
    with (
        fresh_database() as url,
        Deployment(tmp_path, url, env=ENV) as deployment,
        ThreadedReceiver() as receiver,
    ):
        receiver.set_behavior("/a", Ok())
        receiver.set_behavior("/b", Ok())
        receiver.set_behavior("/hang", Hang())
        creds = deployment.create_tenant("acme")
        server = deployment.add_server(CAUSEFLOW_RUN_WORKERS="false")
        workers = [deployment.add_worker() for _ in range(2)]
        with api(server.base_url, creds) as client:
            subs = [subscribe(client, receiver.url_for(p)) for p in ("/a", "/b")]
            publish(client, 60)
            for sub in subs:
                wait_statuses(client, sub["id"], {"succeeded": 60})
            ids = Counter(r.headers["webhook-id"] for r in receiver.requests)
            assert len(ids) == 120
            assert set(ids.values()) == {1}
            for sub in subs:
                resp = client.patch(
                    f"/v1/webhook-subscriptions/{sub['id']}", json={"enabled": False}
                )
                assert resp.status_code == 200, resp.text
            hanging = subscribe(client, receiver.url_for("/hang"))
            publish(client, 6)
            receiver.wait_for_sync(6, path="/hang", timeout=10)
        for worker in workers:
            assert worker.terminate(timeout=15) == 0
        held = _pg_rows(
            url,
            "SELECT id, status, lease_owner, lease_until FROM deliveries "
            f"WHERE subscription_id = '{hanging['id']}'",
        )
    assert len(held) == 6
    assert {(r["status"], r["lease_owner"], r["lease_until"]) for r in held} == {
        ("pending", None, None)
    }


def test_sqlite_leases_are_released_on_sigterm(tmp_path: Path) -> None:
    with Deployment(tmp_path, env=ENV) as deployment, ThreadedReceiver() as receiver:
        receiver.set_behavior("/hang", Hang())
        creds = deployment.create_tenant("acme")
        server = deployment.add_server()
        with api(server.base_url, creds) as client:
            subscribe(client, receiver.url_for("/hang"))
            publish(client, 5)
            receiver.wait_for_sync(5, timeout=10)
        # uvicorn re-raises SIGTERM once its graceful shutdown is done
        assert server.terminate(timeout=15) in (0, -15)
        with sqlite3.connect(deployment.data_dir / "causeflow.db") as db:
            rows = db.execute("SELECT status, lease_owner, lease_until FROM deliveries").fetchall()
    assert rows == [("pending", None, None)] * 5
