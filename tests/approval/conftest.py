"""Approval tests run on a FrozenClock and without the background jobs, so time and the expiry
sweeps move only when a test moves them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.clock import FrozenClock
from tests.support.inproc import Service, make_settings, running_service


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def service(tmp_path: Path, database_url: str, clock: FrozenClock) -> AsyncIterator[Service]:
    settings = make_settings(tmp_path, database_url, run_workers=False, approval_ttl_seconds=600)
    async with running_service(settings, clock) as svc:
        yield svc
