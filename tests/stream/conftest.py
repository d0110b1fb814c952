"""Fixtures of the stream tests: the service under uvicorn in this process, on either backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import uvloop

from tests.stream.live import FAST, LiveService, live_service
from tests.support.inproc import make_settings


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """uvloop, as `causeflow serve` runs: its transports are what the hub writes to."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
async def live(tmp_path: Path, database_url: str) -> AsyncIterator[LiveService]:
    """SQLite and PostgreSQL."""
    async with live_service(make_settings(tmp_path, database_url, **FAST)) as svc:
        yield svc


@pytest.fixture
async def live_sqlite(tmp_path: Path) -> AsyncIterator[LiveService]:
    async with live_service(make_settings(tmp_path, **FAST)) as svc:
        yield svc
