"""The TypeScript SDK's toolchain for tests: Node.js and npm, the package installed once.

`package_dir()` is sdk/typescript; `installed()` runs `npm ci` there (from the committed lock
file, preferring the local cache in ~/.npm, so a warm machine needs no network) and returns the
npm executable. Without `node` or `npm` the tests skip, or fail under CAUSEFLOW_REQUIRE_NODE=1.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.toolchains import require_tool

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "sdk" / "typescript"
REQUIRE = "CAUSEFLOW_REQUIRE_NODE"
MIN_NODE_MAJOR = 18


def node() -> str:
    """The `node` executable (18 or newer)."""
    path = require_tool("node", REQUIRE)
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    match = re.match(r"v(\d+)\.", version.stdout.strip())
    if match is None or int(match.group(1)) < MIN_NODE_MAJOR:
        reason = f"Node.js {MIN_NODE_MAJOR}+ is needed, found {version.stdout.strip()}"
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


def npm() -> str:
    node()
    return require_tool("npm", REQUIRE)


def run(
    argv: list[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command in the package directory; its output is kept for the assertion message."""
    merged = {**os.environ, "npm_config_fund": "false", "npm_config_audit": "false"}
    merged.update(env or {})
    return subprocess.run(
        argv,
        cwd=PACKAGE,
        env=merged,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def output(done: subprocess.CompletedProcess[str]) -> str:
    return f"{' '.join(done.args)} exited with {done.returncode}\n{done.stdout}\n{done.stderr}"


def install() -> str:
    """`npm ci` in sdk/typescript; returns npm's path."""
    path = npm()
    done = run([path, "ci", "--prefer-offline", "--no-audit", "--no-fund"], timeout=300)
    assert done.returncode == 0, output(done)
    return path
