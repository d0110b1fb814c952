"""A subscription changed while the only `causeflow worker` of a PostgreSQL deployment is
stopped: once it is back, the events committed before the change are delivered under the rules
they were committed under, to the new URL, and later ones follow the new rules."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from causeflow_sdk.models import sample_data
from tests.support.pg import fresh_database, require_pg
from tests.support.processes import Deployment
from tests.support.receiver import ThreadedReceiver
from tests.webhook.test_worker_processes import ENV, api, statuses

pytestmark = pytest.mark.process

SUBS = "/v1/webhook-subscriptions"


def publish(client: httpx.Client, event_type: str, **data: object) -> str:
    resp = client.post(
        "/v1/events", json={"event": event_type, "data": sample_data(event_type, **data)}
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def test_changes_made_while_the_worker_is_down_keep_earlier_events(tmp_path: Path) -> None:
    require_pg()
    with (
        fresh_database() as url,
        Deployment(tmp_path, url, env=ENV) as deployment,
        ThreadedReceiver() as receiver,
    ):
        creds = deployment.create_tenant("acme")
        server = deployment.add_server(CAUSEFLOW_RUN_WORKERS="false")
        worker = deployment.add_worker(start=False)
        worker.ready_log = " running"  # printed once its components have started
        worker.start()
        with api(server.base_url, creds) as client:
            resp = client.post(
                SUBS,
                json={
                    "url": receiver.url_for("/old"),
                    "events": ["incident.created"],
                    "filter": {"severity": "critical"},
                },
            )
            assert resp.status_code == 201, resp.text
            sub = resp.json()
            assert worker.terminate(timeout=15) == 0
            before = [publish(client, "incident.created", severity="critical") for _ in range(5)]
            publish(client, "incident.created", severity="low")
            publish(client, "remediation.proposed")
            for body in (
                {"url": receiver.url_for("/new"), "headers": {"X-Team": "blue"}},
                {"events": ["remediation.proposed"], "filter": None},
            ):
                resp = client.patch(f"{SUBS}/{sub['id']}", json=body)
                assert resp.status_code == 200, resp.text
            after = [publish(client, "remediation.proposed") for _ in range(2)]
            publish(client, "incident.created", severity="critical")
            worker.start()
            got = receiver.wait_for_sync(7, path="/new", timeout=20)
            deadline = time.monotonic() + 20
            while (seen := statuses(client, sub["id"])) != Counter(succeeded=7):
                assert time.monotonic() < deadline, seen
                time.sleep(0.1)
        assert receiver.requests_for("/old") == []
    assert sorted(r.json()["id"] for r in got) == sorted(before + after)
    assert {r.headers["X-Team"] for r in got} == {"blue"}
