"""The TypeScript SDK's own checks: `npm test` passes (strict type check, unit tests over the
signature vectors, the SSE parser, pagination and the stream against a fake fetch), and the
generated types match what the generator makes from the catalog and the OpenAPI document now."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.sdk_typescript import npm

pytestmark = pytest.mark.process

GENERATED = npm.PACKAGE / "src" / "generated"


def test_npm_test_passes(unit_run: subprocess.CompletedProcess[str]) -> None:
    assert unit_run.returncode == 0, npm.output(unit_run)
    assert "# fail 0" in unit_run.stdout, npm.output(unit_run)


def test_generated_types_have_not_drifted(npm_path: str, tmp_path: Path) -> None:
    env = {"CAUSEFLOW_PYTHON": sys.executable, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    done = npm.run(
        [npm.node(), "scripts/generate.mjs", "--out", str(tmp_path)],
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, npm.output(done)
    for name in ("events.ts", "api.ts"):
        fresh = (tmp_path / name).read_text(encoding="utf-8")
        committed = (GENERATED / name).read_text(encoding="utf-8")
        assert fresh == committed, (
            f"sdk/typescript/src/generated/{name} is stale: run `npm run generate` in "
            "sdk/typescript and commit the result"
        )


def test_released_with_the_servers_version() -> None:
    package = json.loads((npm.PACKAGE / "package.json").read_text(encoding="utf-8"))
    server = tomllib.loads((npm.ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert package["version"] == server["project"]["version"]
    assert not package.get("dependencies"), "the SDK has no runtime dependencies"
