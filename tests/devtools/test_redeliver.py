"""`causeflow recover` / `causeflow replay` against a real server: failed deliveries are
scheduled again and arrive, events are delivered again, and progress is shown until done."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from causeflow.clock import ms_to_rfc3339
from tests.support.processes import Deployment
from tests.support.receiver import Fail, Ok, ThreadedReceiver

pytestmark = pytest.mark.process


def _post(url: str, key: str, body: dict) -> dict:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"X-API-Key": key, "content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _deliveries(base: str, key: str, sub: str, status: str) -> list[dict]:
    req = urllib.request.Request(
        f"{base}/v1/webhook-subscriptions/{sub}/deliveries?status={status}&limit=100",
        headers={"X-API-Key": key},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["items"]


def test_recover_and_replay_show_progress(tmp_path: Path):
    env = {
        "CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0",
        "CAUSEFLOW_WEBHOOK_ALLOW_HTTP": "true",
        "CAUSEFLOW_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8",
        "CAUSEFLOW_WEBHOOK_RETRY_SCHEDULE": "0.1s",
        "CAUSEFLOW_WEBHOOK_POLL_SECONDS": "0.2",
    }
    with Deployment(tmp_path, env=env) as dep, ThreadedReceiver() as receiver:
        receiver.set_behavior(None, Fail(500))
        tenant = dep.create_tenant()
        key = tenant["apiKey"]
        server = dep.add_server()
        since = ms_to_rfc3339(int(time.time() * 1000) - 60_000)
        sub = _post(
            f"{server.base_url}/v1/webhook-subscriptions",
            key,
            {"url": receiver.url_for("/hook"), "events": ["incident.created"]},
        )["id"]
        for i in range(3):
            _post(f"{server.base_url}/v1/incidents", key, {"title": f"i{i}", "severity": "low"})
        deadline = time.monotonic() + 20
        while len(_deliveries(server.base_url, key, sub, "failed")) < 3:
            assert time.monotonic() < deadline, "deliveries never failed"
            time.sleep(0.2)
        receiver.clear()
        receiver.set_behavior(None, Ok(204))
        cli_env = {"CAUSEFLOW_API_URL": server.base_url, "CAUSEFLOW_API_KEY": key}
        out = dep.run_cli("recover", sub, "--since", since, "--wait", "20", env=cli_env)
        assert "3 deliveries scheduled" in out.stderr
        assert "3/3 done, 0 pending" in out.stderr
        assert len(receiver.wait_for_sync(3, timeout=10)) >= 3
        assert _deliveries(server.base_url, key, sub, "failed") == []

        receiver.clear()
        out = dep.run_cli("replay", sub, "--since", since, "--wait", "20", env=cli_env)
        assert "3 deliveries scheduled" in out.stderr and "0 pending" in out.stderr
        replayed = receiver.wait_for_sync(3, timeout=10)
        assert {r.json()["event"] for r in replayed} == {"incident.created"}

        bad = dep.run_cli("recover", "sub_nope", "--since", since, env=cli_env, check=False)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
