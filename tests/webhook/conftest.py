"""Webhook tests run the service without its workers, so nothing but the test moves deliveries:
the dispatcher is driven by `dispatch_pending` or started by the test itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.inproc import Service, make_settings, running_service


@pytest.fixture
async def service(tmp_path: Path, database_url: str) -> AsyncIterator[Service]:
    async with running_service(make_settings(tmp_path, database_url, run_workers=False)) as svc:
        yield svc
