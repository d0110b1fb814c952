"""ServiceProcess and Deployment, against a stand-in server and the real service."""

from __future__ import annotations

import signal
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from tests.support.pg import fresh_database, require_pg
from tests.support.ports import free_port, port_open
from tests.support.processes import (
    SDK_SRC_DIR,
    SRC_DIR,
    Deployment,
    ServiceProcess,
    parse_json_output,
    service_env,
)


def stand_in(tmp_path: Path, **kwargs: object) -> ServiceProcess:
    """`python -m http.server` on a free port: it answers 200 on `/`."""
    (tmp_path / "www").mkdir(exist_ok=True)
    return ServiceProcess(
        role="serve",
        env=service_env(),
        port=free_port(),
        log_path=tmp_path / "stand-in.log",
        argv=[sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
        health_path="/",
        cwd=tmp_path / "www",
        **kwargs,  # type: ignore[arg-type]
    )


def get_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status)


@pytest.mark.process
def test_start_kill9_restart_terminate(tmp_path: Path) -> None:
    proc = stand_in(tmp_path)
    try:
        proc.start(timeout=15)
        assert proc.alive()
        assert get_status(proc.base_url + "/") == 200
        first_pid = proc.pid

        proc.kill9()
        assert not proc.alive()
        assert proc.returncode == -signal.SIGKILL
        assert not port_open(proc.port or 0)

        proc.restart()
        assert proc.alive() and proc.pid != first_pid
        assert get_status(proc.base_url + "/") == 200

        assert proc.terminate(timeout=10) == -signal.SIGTERM
        assert not proc.alive()
        assert not port_open(proc.port or 0)
        # The log spans both runs, with a marker per start.
        log = proc.log_text()
        assert "--- start #1" in log and "--- start #2" in log
        assert '"GET / HTTP/1.1" 200' in proc.log_tail()
    finally:
        proc.kill9()


@pytest.mark.process
def test_restart_of_a_running_process_keeps_the_port(tmp_path: Path) -> None:
    proc = stand_in(tmp_path)
    try:
        proc.start()
        port, pid = proc.port, proc.pid
        proc.restart()
        assert (proc.port, proc.starts) == (port, 2)
        assert proc.pid != pid
        assert get_status(proc.base_url + "/") == 200
    finally:
        proc.kill9()


@pytest.mark.process
def test_start_reports_an_early_exit_with_the_log(tmp_path: Path) -> None:
    proc = ServiceProcess(
        role="serve",
        env=service_env(),
        port=free_port(),
        log_path=tmp_path / "boom.log",
        argv=[sys.executable, "-c", "import sys; print('boom: bad config'); sys.exit(3)"],
    )
    with pytest.raises(RuntimeError, match=r"(?s)exited with 3 before it was ready.*boom: bad"):
        proc.start(timeout=15)
    assert proc.returncode == 3


@pytest.mark.process
def test_start_times_out_and_kills(tmp_path: Path) -> None:
    proc = ServiceProcess(
        role="serve",
        env=service_env(),
        port=free_port(),
        log_path=tmp_path / "mute.log",
        argv=[sys.executable, "-c", "import time; print('never listening'); time.sleep(60)"],
    )
    # the message says the timeout ended the wait (not the child's exit, 60 s later)
    with pytest.raises(RuntimeError, match=r"(?s)not ready after 1 s.*never listening"):
        proc.start(timeout=1)
    assert not proc.alive()


@pytest.mark.process
def test_terminate_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = ServiceProcess(
        role="worker",
        env=service_env(),
        port=None,
        log_path=tmp_path / "stubborn.log",
        argv=[sys.executable, "-c", script],
        ready_log="ready",
    )
    proc.start(timeout=15)
    with pytest.raises(TimeoutError, match="ignored SIGTERM"):
        proc.terminate(timeout=0.5)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.process
def test_kill9_takes_the_whole_process_group(tmp_path: Path) -> None:
    # The parent prints its child's pid; SIGKILL of the group must take the child too.
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('CHILD:%d' % child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = ServiceProcess(
        role="worker",
        env=service_env(),
        port=None,
        log_path=tmp_path / "group.log",
        argv=[sys.executable, "-c", script],
        ready_log="CHILD:",
    )
    proc.start(timeout=15)
    child = int(proc.log_tail(1).split("CHILD:")[1])
    proc.kill9()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child}").exists() and "Z" not in _state(child):
        assert time.monotonic() < deadline, "child survived the group kill"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "gone"
    return stat[stat.rindex(")") + 2]


@pytest.mark.unit
def test_service_env_drops_outer_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAUSEFLOW_DATABASE_URL", "postgresql://elsewhere/db")
    env = service_env({"CAUSEFLOW_X": "1"})
    assert "CAUSEFLOW_DATABASE_URL" not in env
    assert env["CAUSEFLOW_X"] == "1"
    # This tree's server and client library, whatever the virtualenv's installs point at.
    assert env["PYTHONPATH"].split(":")[:2] == [str(SRC_DIR), str(SDK_SRC_DIR)]


@pytest.mark.process
def test_deployment_env(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path, env={"CAUSEFLOW_SSE_PING_SECONDS": "1"})
    assert deployment.env["CAUSEFLOW_DATA_DIR"] == str(tmp_path / "data")
    assert deployment.env["CAUSEFLOW_DATABASE_URL"] == ""
    assert deployment.env["CAUSEFLOW_SSE_PING_SECONDS"] == "1"
    env = deployment.env_with({"CAUSEFLOW_SSE_PING_SECONDS": None, "CAUSEFLOW_Y": "2"})
    assert "CAUSEFLOW_SSE_PING_SECONDS" not in env and env["CAUSEFLOW_Y"] == "2"
    pg = Deployment(tmp_path / "pg", database_url="postgresql://postgres@127.0.0.1:5432/x")
    assert pg.env["CAUSEFLOW_DATABASE_URL"] == "postgresql://postgres@127.0.0.1:5432/x"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ('{"tenantId": "ten_1"}\n', {"tenantId": "ten_1"}),
        ('migrating...\n{"tenantId": "ten_2", "k": "v"}\n', {"tenantId": "ten_2", "k": "v"}),
    ],
)
def test_parse_json_output(stdout: str, expected: dict[str, str]) -> None:
    assert parse_json_output(stdout) == expected


@pytest.mark.unit
def test_parse_json_output_without_json() -> None:
    with pytest.raises(ValueError, match="no JSON object"):
        parse_json_output("nothing here\n")


# --- the real service -----------------------------------------------------------------------


def get_json(url: str, api_key: str) -> object:
    request = urllib.request.Request(url, headers={"X-API-Key": api_key})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return orjson.loads(response.read())


@pytest.mark.process
def test_real_serve_on_sqlite_survives_kill9(tmp_path: Path) -> None:
    with Deployment(tmp_path) as deployment:
        deployment.migrate()
        tenant = deployment.create_tenant("acme")
        assert {"tenantId", "apiKey", "ingestKey", "webhookSecret", "adminToken"} <= set(tenant)
        server = deployment.add_server()
        assert get_status(server.base_url + "/healthz") == 200
        assert get_status(server.base_url + "/readyz") == 200
        before = get_json(server.base_url + "/v1/events", tenant["apiKey"])

        server.kill9()
        assert not port_open(server.port or 0)
        server.restart()
        assert get_status(server.base_url + "/readyz") == 200
        assert get_json(server.base_url + "/v1/events", tenant["apiKey"]) == before

        code = server.terminate()
        assert code in (0, -signal.SIGTERM)
        assert not server.alive() and not port_open(server.port or 0)
    assert (tmp_path / "data").is_dir()


@pytest.mark.process
@pytest.mark.pg
def test_real_serve_and_worker_on_postgres(tmp_path: Path) -> None:
    require_pg()
    with fresh_database() as url, Deployment(tmp_path, database_url=url) as deployment:
        deployment.migrate()
        tenant = deployment.create_tenant()
        server = deployment.add_server()
        worker = deployment.add_worker()
        assert worker.alive()
        worker.kill9()
        worker.restart()
        assert worker.alive()
        assert get_status(server.base_url + "/readyz") == 200
        get_json(server.base_url + "/v1/events", tenant["apiKey"])
        codes = deployment.stop_all()
        assert set(codes) == {"serve-1.log", "worker-1.log"}
        assert not any(p.alive() for p in deployment.processes)
