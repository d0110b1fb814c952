"""The `causeflow` command as a user runs it: real processes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jwt
import pytest

from tests.support.processes import Deployment

pytestmark = pytest.mark.process


@pytest.fixture
def dep(tmp_path: Path):
    with Deployment(tmp_path) as deployment:
        yield deployment


def _get(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_tenant_create_json_gives_working_credentials(dep: Deployment):
    out = dep.create_tenant("acme")
    assert set(out) == {"tenantId", "apiKey", "ingestKey", "webhookSecret", "adminToken"}
    assert out["tenantId"].startswith("ten_") and out["apiKey"].startswith("cflo_")
    assert out["webhookSecret"].startswith("whsec_")
    claims = jwt.decode(out["adminToken"], options={"verify_signature": False})
    assert claims["roles"] == ["admin"] and claims["tenant_id"] == out["tenantId"]
    assert 86000 < claims["exp"] - time.time() <= 86400
    server = dep.add_server()
    status, body = _get(f"{server.base_url}/v1/events", {"X-API-Key": out["apiKey"]})
    assert status == 200 and body["items"][0]["event"] == "tenant.created"
    status, _ = _get(f"{server.base_url}/v1/events", {"X-API-Key": out["ingestKey"]})
    assert status == 403
    status, body = _get(
        f"{server.base_url}/v1/tenant", {"Authorization": f"Bearer {out['adminToken']}"}
    )
    assert status == 200 and body["name"] == "acme"


def test_token_command(dep: Deployment):
    tenant = dep.create_tenant()
    member = dep.run_cli(
        "token", "--tenant", tenant["tenantId"], "--role", "member", "--ttl", "60"
    ).stdout.strip()
    claims = jwt.decode(member, options={"verify_signature": False})
    assert claims["roles"] == ["member"] and claims["exp"] - claims["iat"] == 60
    platform = dep.run_cli("token", "--platform-admin").stdout.strip()
    assert jwt.decode(platform, options={"verify_signature": False})["roles"] == ["platform_admin"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["token", "--tenant", "ten_nope"], "no tenant ten_nope"),
        (["token"], "--tenant"),
        (["token", "--tenant", "x", "--role", "owner"], "--role"),
        (["tenant", "create", "--name", "x", "--plan", "gold"], "unknown plan"),
        (["worker"], "inside `causeflow serve`"),
    ],
)
def test_errors_are_one_line_and_nonzero(dep: Deployment, args: list[str], needle: str):
    dep.migrate()
    result = dep.run_cli(*args, check=False)
    assert result.returncode != 0
    assert needle in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["", "x" * 201])
def test_tenant_create_refuses_a_name_the_api_refuses(dep: Deployment, name: str):
    """The API takes names of 1 to 200 characters; the command makes no other tenants."""
    dep.migrate()
    result = dep.run_cli("tenant", "create", "--name", name, check=False)
    assert result.returncode != 0
    assert "--name" in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
    assert dep.run_cli("tenant", "list", "--json").stdout.strip() == ""


def test_second_serve_on_one_sqlite_file_is_refused(dep: Deployment):
    dep.add_server()
    result = dep.run_cli("serve", "--port", "1", check=False, timeout=30)
    assert result.returncode != 0
    assert "already served" in result.stderr and "Traceback" not in result.stderr
    # short commands still work beside it
    assert dep.run_cli("migrate").returncode == 0


def test_migrate_shows_progress(dep: Deployment):
    result = dep.run_cli("migrate")
    assert "Running upgrade" in result.stderr and "schema is up to date" in result.stderr
    again = dep.run_cli("migrate")
    assert "Running upgrade" not in again.stderr and "schema is up to date" in again.stderr


@pytest.mark.parametrize("args", [[], ["tenant"], ["keys"]])
def test_no_arguments_prints_help_and_succeeds(tmp_path: Path, args: list[str]):
    result = subprocess.run(
        [sys.executable, "-m", "causeflow", *args],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "Commands" in result.stdout
    assert result.stderr == ""


def test_usage_mistakes_exit_2_with_one_line(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "causeflow", "--no-such-option"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: No such option: --no-such-option"


def test_tenant_list_shows_every_tenant(dep: Deployment, tmp_path: Path):
    first = dep.create_tenant("Acme Corp")
    second = dep.create_tenant("globex")
    lines = dep.run_cli("tenant", "list").stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "PLAN", "CREATED"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {first["tenantId"], second["tenantId"]}
    assert "Acme Corp" in rows[first["tenantId"]] and "business" in rows[first["tenantId"]]
    as_json = [
        json.loads(line) for line in dep.run_cli("tenant", "list", "--json").stdout.splitlines()
    ]
    assert [t["name"] for t in as_json] == ["Acme Corp", "globex"]
    assert all(t["createdAt"].endswith("Z") for t in as_json)
    # --data-dir names the store, whatever the environment says
    elsewhere = dep.run_cli(
        "tenant", "list", "--data-dir", str(dep.data_dir), env={"CAUSEFLOW_DATA_DIR": str(tmp_path)}
    )
    assert elsewhere.stdout.splitlines() == lines
    empty = tmp_path / "empty"
    dep.run_cli("migrate", "--data-dir", str(empty))  # a store with no tenant yet
    assert dep.run_cli("tenant", "list", "--data-dir", str(empty)).stdout.split() == [
        "ID",
        "NAME",
        "PLAN",
        "CREATED",
    ]
