"""The client library stands alone: importing any of its modules loads nothing of the server."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.support.processes import service_env

pytestmark = pytest.mark.process

PROBE = """
import importlib, pkgutil, sys, orjson
import causeflow_sdk
for info in pkgutil.walk_packages(causeflow_sdk.__path__, "causeflow_sdk."):
    importlib.import_module(info.name)
print(orjson.dumps(sorted(sys.modules)).decode())
"""
FORBIDDEN_TOP = {"fastapi", "starlette", "sqlalchemy", "uvicorn", "alembic", "asyncpg", "typer"}


def test_importing_the_sdk_loads_no_server_module() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=service_env(), capture_output=True, text=True, check=True
    ).stdout
    loaded = set(orjson.loads(out))
    assert {"causeflow_sdk.sync", "causeflow_sdk.models.catalog", "aiohttp"} <= loaded
    assert not {m.split(".")[0] for m in loaded} & FORBIDDEN_TOP
    server = sorted(m for m in loaded if m == "causeflow" or m.startswith("causeflow."))
    assert server == [], f"the SDK imported server modules: {server}"
