"""The credentials `serve` makes on its first start with an empty store.

On an interactive terminal (SQLite) they are shown, each value explained. Anywhere else (a
pipe, a log file, any PostgreSQL deployment) they are written to a file of mode 0600 and the
log names only that file: no service log ever holds them.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.keys import pg_key_env
from tests.support.pg import fresh_database, require_pg
from tests.support.ports import free_port
from tests.support.processes import Deployment, service_env

pytestmark = pytest.mark.process

VALUE = r"\s+(\S+)$"


def values(text: str) -> dict[str, str]:
    """The credentials of the block, by label (each value ends its line)."""
    found = {}
    for label in ("API key", "admin token", "ingest key", "signing secret", "tenant id"):
        match = re.search(rf"^  {label}{VALUE}", text, flags=re.M)
        assert match, f"no {label} line in\n{text}"
        found[label] = match.group(1)
    return found


def check_explained(text: str, base_url: str) -> dict[str, str]:
    got = values(text)
    assert got["API key"].startswith("cflo_") and got["ingest key"].startswith("cflo_")
    assert got["signing secret"].startswith("whsec_") and got["tenant id"].startswith("ten_")
    assert got["admin token"].count(".") == 2
    assert f"{base_url}/ui: sign in by pasting the API key" in text
    assert "X-Webhook-Signature: sha256=" in text and "X-API-Key" in text
    assert "valid\n      24 h (until 20" in text
    assert f"/v1/webhooks/{got['tenant id']}/<provider>" in text
    return got


def events_status(base_url: str, api_key: str) -> tuple[int, dict]:
    req = urllib.request.Request(f"{base_url}/v1/events", headers={"X-API-Key": api_key})
    with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 (loopback)
        return resp.status, json.loads(resp.read())


def wait_healthy(base_url: str, proc: subprocess.Popen, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "serve exited"
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=1):  # noqa: S310
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("serve did not become ready")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def serve_on_a_terminal(env: dict[str, str], port: int, log: Path) -> str:
    """Run `serve` with its standard output on a pseudo-terminal; what it showed there."""
    master, slave = pty.openpty()
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "causeflow", "serve", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=err,
        )
    os.close(slave)
    shown = b""
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        while select.select([master], [], [], 1.0)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        stop(proc)
        os.close(master)
    return shown.decode().replace("\r\n", "\n")


def test_interactive_terminal_shows_the_explained_credentials(tmp_path: Path):
    port = free_port()
    data = tmp_path / "data"
    env = service_env({"CAUSEFLOW_DATA_DIR": str(data)})
    shown = serve_on_a_terminal(env, port, tmp_path / "serve.log")
    got = check_explained(shown, f"http://127.0.0.1:{port}")
    assert not (data / "first-run-credentials.txt").exists()
    assert got["API key"] not in (tmp_path / "serve.log").read_text()


def test_piped_output_gets_a_private_file_and_the_log_only_its_path(tmp_path: Path):
    port = free_port()
    data = tmp_path / "data"
    env = service_env({"CAUSEFLOW_DATA_DIR": str(data)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "causeflow", "serve", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        path = data / "first-run-credentials.txt"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        got = check_explained(path.read_text(), base)
        status, body = events_status(base, got["API key"])
        assert status == 200 and body["items"][0]["data"]["name"] == "default"
    finally:
        stop(proc)
    log = proc.stdout.read().decode() if proc.stdout else ""
    assert str(path.resolve()) in log and "mode 0600" in log
    # the tenant id is no credential (the access log names it on every request)
    for label, secret in got.items():
        assert label == "tenant id" or secret not in log, label
    assert "cflo_" not in log and "whsec_" not in log


def test_log_file_deployment_writes_the_file_once(tmp_path: Path):
    with Deployment(tmp_path) as dep:
        server = dep.add_server()
        path = dep.data_dir / "first-run-credentials.txt"
        got = check_explained(path.read_text(), server.base_url)
        assert "cflo_" not in server.log_text()
        path.unlink()
        server.restart()
        assert not path.exists()  # not the first start any more: nothing new to hand over
        assert "first-run-credentials" not in server.log_text().split("--- start #2")[-1]
        assert events_status(server.base_url, got["API key"])[0] == 200


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
def test_postgresql_never_shows_them_and_uses_the_setting_path(tmp_path: Path, terminal: bool):
    require_pg()
    port = free_port()
    target = tmp_path / "secrets" / "first.txt"
    with fresh_database() as url:
        env = service_env(
            {
                "CAUSEFLOW_DATA_DIR": str(tmp_path / "data"),
                "CAUSEFLOW_DATABASE_URL": url,
                "CAUSEFLOW_FIRST_RUN_FILE": str(target),
                **pg_key_env(url),
            }
        )
        if terminal:
            shown = serve_on_a_terminal(env, port, tmp_path / "serve.log")
            log, base = shown + (tmp_path / "serve.log").read_text(), f"http://127.0.0.1:{port}"
        else:
            with Deployment(tmp_path, url, env={"CAUSEFLOW_FIRST_RUN_FILE": str(target)}) as dep:
                server = dep.add_server()
                log, base = server.log_text(), server.base_url
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
        got = check_explained(target.read_text(), base)
        assert str(target) in log
        assert got["API key"] not in log and "whsec_" not in log


def test_an_unwritable_credentials_file_creates_no_tenant(tmp_path: Path):
    """The credentials are the only way in: when they cannot be written, `serve` stops before
    making the tenant, so the next start (with a writable file) still makes and hands them over."""
    data, blocked = tmp_path / "data", tmp_path / "a-directory"
    blocked.mkdir()
    env = service_env({"CAUSEFLOW_DATA_DIR": str(data), "CAUSEFLOW_FIRST_RUN_FILE": str(blocked)})
    result = subprocess.run(
        [sys.executable, "-m", "causeflow", "serve", "--port", str(free_port())],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(blocked) in last, result.stderr
    assert "Traceback" not in result.stderr
    with Deployment(tmp_path) as dep:
        assert dep.run_cli("tenant", "list", "--json").stdout.strip() == ""
        server = dep.add_server()
        path = dep.data_dir / "first-run-credentials.txt"
        got = check_explained(path.read_text(), server.base_url)
        assert events_status(server.base_url, got["API key"])[0] == 200
