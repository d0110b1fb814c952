"""The client library as its own distribution (`causeflow-sdk`, built from sdk/python).

Its metadata agrees with the server's (version, pin, license, dependencies that are exactly
its third-party imports), and its wheel alone, in a fresh virtualenv without the server's
stack, is enough for the example receiver to verify a real signed delivery.
"""

from __future__ import annotations

import ast
import asyncio
import os
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from packaging.requirements import Requirement

import causeflow
import causeflow_sdk
from causeflow_sdk import AsyncClient
from causeflow_sdk.signatures import generate_secret
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
SDK_DIR = ROOT / "sdk/python"
SERVER_ONLY = ["fastapi", "sqlalchemy", "asyncpg", "causeflow"]
SIGNED_HEADERS = ("webhook-", "x-causeflow-", "content-type")


def _project(pyproject: Path) -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads(pyproject.read_text())["project"]
    return project


def _requirements(project: dict[str, Any]) -> dict[str, Requirement]:
    return {r.name: r for r in map(Requirement, project["dependencies"])}


def _third_party_imports() -> set[str]:
    found: set[str] = set()
    for path in (SDK_DIR / "src/causeflow_sdk").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"causeflow_sdk"}


@pytest.mark.unit
def test_the_sdk_metadata_matches_its_imports_and_the_server() -> None:
    sdk, server = _project(SDK_DIR / "pyproject.toml"), _project(ROOT / "pyproject.toml")
    requires, pins = _requirements(sdk), _requirements(server)
    assert set(requires) == _third_party_imports() == {"aiohttp", "orjson", "pydantic"}
    assert str(pins["causeflow-sdk"].specifier) == f"=={causeflow_sdk.__version__}"
    assert causeflow_sdk.__version__ == server["version"] == causeflow.__version__
    for name, requirement in requires.items():
        [pin] = pins[name].specifier
        assert requirement.specifier.contains(pin.version), (name, pin, requirement)
    assert sdk["license"] == "Apache-2.0" and sdk["license-files"] == ["LICENSE"]
    assert (SDK_DIR / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()


def _outside_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a program that is not this checkout: no PYTHONPATH, no venv, no
    CAUSEFLOW_* settings."""
    drop = ("PYTHON", "VIRTUAL_ENV", "CAUSEFLOW_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return env | (extra or {})


def _run(*argv: str | Path) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        env=_outside_env(),
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


@dataclass
class WheelOnly:
    wheel: Path
    python: Path  # of a fresh virtualenv holding the wheel and its dependencies, nothing else


@pytest.fixture(scope="module")
def wheel_only(tmp_path_factory: pytest.TempPathFactory) -> WheelOnly:
    tmp = tmp_path_factory.mktemp("sdk-wheel")
    source = tmp / "source"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(SDK_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", source, "-w", tmp / "dist")
    [wheel] = (tmp / "dist").glob("causeflow_sdk-*.whl")
    _run(sys.executable, "-m", "venv", tmp / "venv")
    python = tmp / "venv/bin/python"
    _run(python, "-m", "pip", "install", "-q", wheel)
    return WheelOnly(wheel, python)


@pytest.mark.process
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_wheel_holds_the_sdk_and_the_models_and_installs_no_server(
    wheel_only: WheelOnly,
) -> None:
    info = f"causeflow_sdk-{causeflow_sdk.__version__}.dist-info"
    with zipfile.ZipFile(wheel_only.wheel) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"{info}/METADATA").decode()
    assert {"causeflow_sdk/sync.py", "causeflow_sdk/models/catalog.py"} <= names
    assert {"causeflow_sdk/py.typed", f"{info}/licenses/LICENSE"} <= names
    assert {n.split("/")[0] for n in names} == {"causeflow_sdk", info}
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert sorted(Requirement(r.split(":", 1)[1]).name for r in requires) == [
        "aiohttp",
        "orjson",
        "pydantic",
    ]
    probe = (
        "import importlib.util, json, causeflow_sdk; "
        f"print(json.dumps([[m for m in {SERVER_ONLY!r} if importlib.util.find_spec(m)], "
        "causeflow_sdk.__file__]))"
    )
    found, location = orjson.loads(_run(wheel_only.python, "-I", "-c", probe))
    assert found == [], f"the wheel's virtualenv can import {found}"
    assert Path(location).is_relative_to(wheel_only.python.parent.parent)


async def _log_shows(process: ServiceProcess, line: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while line not in process.log_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{line!r} not in the receiver's log:\n{process.log_tail()}")
        await asyncio.sleep(0.05)


@pytest.mark.process
@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_wheel_only_receiver_verifies_a_real_delivery(
    wheel_only: WheelOnly, client: AsyncClient, tmp_path: Path
) -> None:
    secret = generate_secret()
    hook = ServiceProcess(
        "receiver",
        env=_outside_env({"CAUSEFLOW_WEBHOOK_SECRET": secret}),
        port=free_port(),
        log_path=tmp_path / "receiver.log",
        argv=[
            str(wheel_only.python),
            "-I",
            str(ROOT / "examples/receivers/python/receiver.py"),
            "{port}",
        ],
        health_path=None,
        ready_log="listening on",
    )
    await asyncio.to_thread(hook.start)
    try:
        async with Receiver() as capture:
            urls = [hook.base_url + "/hooks", capture.url_for("/hooks")]
            subs = [
                await client.subscriptions.create(url, ["incident.created"], secret=secret)
                for url in urls
            ]
            incident = await client.incidents.create("wheel-only receiver", "low")
            await capture.wait_for(1, path="/hooks")
            [delivered] = [r for r in capture.requests_for("/hooks") if incident.id in r.text()]
            await _log_shows(hook, f"verified incident.created {delivered.json()['id']}")

            # The same signed headers over a body changed by one byte: refused.
            tampered = delivered.body.replace(b"wheel-only receiver", b"wheel-only receiveR")
            signed = {
                k: v for k, v in delivered.headers.items() if k.lower().startswith(SIGNED_HEADERS)
            }
            async with aiohttp.ClientSession() as http:
                async with http.post(urls[0], data=tampered, headers=signed) as answer:
                    assert answer.status == 400
            await _log_shows(hook, "rejected: webhook-signature does not match any secret")
            for sub in subs:
                await client.subscriptions.delete(sub.id)
    finally:
        hook.terminate()
