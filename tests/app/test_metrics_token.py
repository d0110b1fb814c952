"""`CAUSEFLOW_METRICS_TOKEN`: when set, `/metrics` of the API and of a worker's metrics port want
`Authorization: Bearer <token>`; anything else is 401 in the error shape. Unset, both are open."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from causeflow.cli import serve_worker_metrics
from causeflow.settings import Settings
from tests.support.inproc import make_settings, running_service
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

TOKEN = "scrape-me-7f3a"
WRONG = [
    {},
    {"Authorization": "Bearer nope"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
    {"X-API-Key": TOKEN},
]


async def test_api_metrics_want_the_token_when_one_is_set(tmp_path: Path):
    async with running_service(make_settings(tmp_path, metrics_token=TOKEN)) as service:
        for headers in WRONG:
            resp = await service.client.get("/metrics", headers=headers)
            assert resp.status_code == 401, headers
            assert resp.json()["error"] == "unauthorized" and resp.json()["message"]
            assert resp.headers["www-authenticate"] == "Bearer"
        ok = await service.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and "causeflow_events_appended_total" in ok.text
        lower = await service.client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})
        assert lower.status_code == 200
        # the token guards /metrics only
        assert (await service.client.get("/healthz")).status_code == 200


async def test_api_metrics_are_open_by_default(tmp_path: Path):
    async with running_service(make_settings(tmp_path)) as service:
        assert (await service.client.get("/metrics")).status_code == 200


def _get(url: str, headers: dict[str, str]) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize("token", [TOKEN, ""])
def test_worker_metrics_port_honours_the_token(tmp_path: Path, token: str):
    port = free_port()
    settings = Settings(data_dir=tmp_path, worker_metrics_port=port, metrics_token=token)
    server = serve_worker_metrics(settings)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        for headers in WRONG:
            status, body = _get(url, headers)
            if token:
                assert status == 401, headers
                assert json.loads(body)["error"] == "unauthorized"
            else:
                assert status == 200 and "causeflow_deliveries_total" in body
        status, body = _get(url, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and "causeflow_deliveries_total" in body
    finally:
        server.shutdown()
        server.server_close()
