"""The TypeScript SDK installed and its unit tests run once per session; a real server for the
integration scripts, which `npm test` compiles (build-test/test/integration/)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.sdk_typescript import npm
from tests.support.serve import Live, live_service


@pytest.fixture(scope="session")
def npm_path() -> str:
    return npm.install()


@pytest.fixture(scope="session")
def unit_run(npm_path: str) -> subprocess.CompletedProcess[str]:
    """`npm test`: `tsc --noEmit` over the library (DOM types only), the tests compiled, and the
    unit tests run with node:test."""
    return npm.run([npm_path, "test"], timeout=300)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_service(tmp_path_factory.mktemp("ts-sdk-live")) as running:
        yield running
