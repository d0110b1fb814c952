"""The client library stands alone: importing it loads nothing of the server."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.support.processes import service_env

pytestmark = pytest.mark.process

PROBE = """
import sys, orjson
import causeflow.sdk
import causeflow.sdk.client, causeflow.sdk.sync, causeflow.sdk.stream, causeflow.sdk.webhooks
print(orjson.dumps(sorted(sys.modules)).decode())
"""
FORBIDDEN_TOP = {"fastapi", "starlette", "sqlalchemy", "uvicorn", "alembic", "asyncpg", "typer"}


def test_importing_the_sdk_loads_no_server_module() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=service_env(), capture_output=True, text=True, check=True
    ).stdout
    loaded = set(orjson.loads(out))
    assert "causeflow.sdk" in loaded and "aiohttp" in loaded
    assert not {m.split(".")[0] for m in loaded} & FORBIDDEN_TOP
    ours = {m for m in loaded if m == "causeflow" or m.startswith("causeflow.")}
    outside = {
        m
        for m in ours
        if m != "causeflow"
        and not m.startswith(("causeflow.sdk.", "causeflow.models."))
        and m not in ("causeflow.sdk", "causeflow.models")
    }
    assert outside == set(), f"the SDK imported server modules: {sorted(outside)}"
