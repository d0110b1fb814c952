"""docs/deploying.md's platform-admin block, run with bash as an operator would paste it, against
a real `causeflow serve`: only the service's URL is moved to the test's port."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import Deployment

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
DOC_URL = "https://causeflow.example.com"


def tenant_admin_block() -> str:
    text = (ROOT / "docs" / "deploying.md").read_text()
    match = re.search(r"<!-- tenant-admin -->\n```sh\n(.*?)```", text, flags=re.S)
    assert match, "docs/deploying.md lost its tenant-admin block"
    return match.group(1)


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object printed at the top level (curl ends none with a newline)."""
    decoder, found, at = json.JSONDecoder(), [], text.find("{")
    while at != -1:
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            at = text.find("{", at + 1)
            continue
        found.append(value)
        at = text.find("{", end)
    return found


def test_the_platform_admin_block_runs(tmp_path: Path) -> None:
    script = tenant_admin_block()
    assert script.count(DOC_URL) == 1
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # `causeflow` as installed: this interpreter with this tree's code.
    wrapper = bin_dir / "causeflow"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m causeflow "$@"\n')
    wrapper.chmod(0o755)
    with Deployment(tmp_path / "service") as dep:
        server = dep.add_server()
        env = dep.env_with({"PATH": f"{bin_dir}:{dep.env['PATH']}"})
        result = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + script.replace(DOC_URL, server.base_url)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.strip().splitlines()
        acme = json.loads((tmp_path / "acme.json").read_text())
        assert set(acme) >= {"tenantId", "apiKey", "ingestKey", "webhookSecret", "adminToken"}
        assert any(acme["tenantId"] in line and "acme" in line for line in lines)
        printed = json_objects(result.stdout)
        tenants = next(o for o in printed if "items" in o)
        plans = {t["name"]: t["plan"] for t in tenants["items"]}
        ids = {t["name"]: t["id"] for t in tenants["items"]}
        assert plans["acme"] == "pro" and plans["globex"] == "enterprise"
        keys = [o for o in printed if "scopes" in o and "key" in o]
        assert [k["scopes"] for k in keys] == [["alerts:ingest"], ["events:read"]]
        assert keys[0]["webhookSecret"] and keys[0]["key"].startswith("cflo_")
        member = lines[-1]
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            seen = client.get("/v1/incidents", headers={"Authorization": f"Bearer {member}"})
            assert seen.status_code == 200, seen.text
            denied = client.get("/v1/users", headers={"Authorization": f"Bearer {member}"})
            assert denied.status_code == 403
            ingest = client.post(
                f"/v1/webhooks/{ids['globex']}/custom",
                json={"title": "From the new key"},
                headers={"X-API-Key": keys[0]["key"]},
            )
            assert ingest.status_code == 202, ingest.text
