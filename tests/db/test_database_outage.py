"""The database stopped and started under load (a private cluster, not the shared server):
requests during the outage get 503 in the error shape, never hang; the
processes reconnect by themselves; nothing accepted is lost."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from causeflow_sdk.models import sample_data
from tests.support.pg import require_pg
from tests.support.pgcluster import PrivateCluster
from tests.support.processes import Deployment

pytestmark = pytest.mark.process


def _call(
    method: str, url: str, headers: dict, body: dict | None = None, timeout: float = 30
) -> tuple[int, dict]:
    """One request; a hanging one fails the test at `timeout` (the service's own database
    timeouts are a few seconds)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={**headers, "content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_database_outage_gives_503_then_recovers(tmp_path: Path):
    require_pg()
    with PrivateCluster() as cluster:
        url = cluster.create_database("causeflow")
        with Deployment(
            tmp_path, database_url=url, env={"CAUSEFLOW_RATE_LIMIT_PER_MINUTE": "0"}
        ) as dep:
            tenant = dep.create_tenant()
            servers = [dep.add_server(), dep.add_server()]
            hdr = {"X-API-Key": tenant["apiKey"]}
            accepted: list[str] = []

            def publish(server, i):
                body = {
                    "event": "incident.created",
                    "data": sample_data("incident.created", title=f"n{i}"),
                }
                status, out = _call("POST", f"{server.base_url}/v1/events", hdr, body)
                if status == 201:
                    accepted.append(out["id"])
                return status, out

            for i in range(10):
                assert publish(servers[i % 2], i)[0] == 201
            cluster.stop(mode="immediate")
            for i in range(4):
                status, out = publish(servers[i % 2], 100 + i)  # an answer, not a hang
                assert status == 503, out
                assert out["error"] == "service_unavailable" and out["message"]
            ready = urllib.request.Request(f"{servers[0].base_url}/readyz")
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(ready, timeout=10)
            assert err.value.code == 503
            cluster.start()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if publish(servers[0], 200)[0] == 201:
                    break
                time.sleep(0.3)
            for i in range(10):
                assert publish(servers[i % 2], 300 + i)[0] == 201
            # every accepted event is in the log, in order, on either node
            status, page = _call("GET", f"{servers[1].base_url}/v1/events?limit=100", hdr)
            ids = [e["id"] for e in page["items"] if e["event"] == "incident.created"]
            assert ids == accepted
