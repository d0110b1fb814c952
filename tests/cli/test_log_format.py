"""`causeflow serve` writes its log in the format asked for: with CAUSEFLOW_LOG_FORMAT=json every
line it writes (uvicorn's own records included) is one JSON object, with an access record per
request; with the default text, one access line per request and no JSON."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest

from tests.support.ports import free_port
from tests.support.processes import ServiceProcess, service_env

pytestmark = pytest.mark.process


def serve(tmp_path: Path, env: dict[str, str]) -> ServiceProcess:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    process = ServiceProcess(
        "serve",
        service_env({"CAUSEFLOW_DATA_DIR": str(data), **env}),
        free_port(),
        tmp_path / "serve.log",
    )
    process.start()
    return process


def get(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def output(process: ServiceProcess) -> list[str]:
    """What the process wrote (the harness's own start marker left out)."""
    return [ln for ln in process.log_text().splitlines() if ln and not ln.startswith("--- start")]


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    process = serve(tmp_path, {"CAUSEFLOW_LOG_FORMAT": "json"})
    try:
        assert get(process.base_url + "/healthz", {"X-Request-Id": "probe-1"}) == 200
        secret = "cflo_" + "k" * 40
        assert get(process.base_url + f"/v1/incidents?token={secret}", {"X-API-Key": secret}) == 401
    finally:
        process.terminate()
    records = [orjson.loads(line) for line in output(process)]  # each line parses
    assert {"time", "level", "logger", "message"} <= set(records[0])
    loggers = {r["logger"] for r in records}
    assert "uvicorn.error" in loggers  # uvicorn's startup and shutdown records too
    access = [r for r in records if r["logger"] == "causeflow.access"]
    probe = next(r for r in access if r["request_id"] == "probe-1")
    assert (probe["method"], probe["route"], probe["status"]) == ("GET", "/healthz", 200)
    refused = next(r for r in access if r["status"] == 401)
    assert refused["route"] == "/v1/incidents" and refused["tenant_id"] is None
    assert secret not in process.log_text()
    assert "?token" not in process.log_text() and "cflo_kk" not in process.log_text()


def test_text_logs_by_default(tmp_path: Path) -> None:
    process = serve(tmp_path, {})
    try:
        assert get(process.base_url + "/healthz") == 200
        assert get(process.base_url + "/v1/nothing") == 404
    finally:
        process.terminate()
    lines = output(process)
    assert not any(line.startswith("{") for line in lines)
    access = [line for line in lines if "causeflow.access:" in line]
    assert any(" GET /healthz 200 " in line for line in access)
    assert any(" GET unmatched 404 " in line for line in access)


def test_the_access_log_off(tmp_path: Path) -> None:
    process = serve(tmp_path, {"CAUSEFLOW_ACCESS_LOG": "false"})
    try:
        assert get(process.base_url + "/healthz") == 200
    finally:
        process.terminate()
    assert not any("causeflow.access" in line for line in output(process))
    # nor does uvicorn write its own access lines
    assert not any('"GET /healthz HTTP/1.1" 200' in line for line in output(process))
