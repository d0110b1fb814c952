"""Shared fixtures: both storage backends, the in-process service, tenants; the tier check."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.inproc import Service, Tenant, make_settings, running_service  # noqa: E402
from tests.support.pg import fresh_database_async, require_pg  # noqa: E402
from tests.support.tiers import PROBLEMS, tier_problems  # noqa: E402


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Before `-m` deselects anything: the collected tests whose tier markers are not one."""
    config.stash[PROBLEMS] = tier_problems(items)


@pytest.fixture(params=["sqlite", "pg"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "pg":
        require_pg()
    return str(request.param)


@pytest.fixture
async def database_url(backend: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield ""
        return
    async with fresh_database_async() as url:
        yield url


@pytest.fixture
async def service(tmp_path: Path, database_url: str) -> AsyncIterator[Service]:
    async with running_service(make_settings(tmp_path, database_url)) as svc:
        yield svc


@pytest.fixture
async def sqlite_service(tmp_path: Path) -> AsyncIterator[Service]:
    async with running_service(make_settings(tmp_path)) as svc:
        yield svc


@pytest.fixture
async def tenant(service: Service) -> Tenant:
    return await service.tenant("acme")


@pytest.fixture
async def other_tenant(service: Service) -> Tenant:
    return await service.tenant("globex")
