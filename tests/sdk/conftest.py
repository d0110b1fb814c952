"""One real server for the client library's live tests (package scope: it starts once).

`test_live_stream` restarts it; the server keeps its data and port, so later tests still work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from causeflow_sdk import AsyncClient
from tests.support.serve import Live, live_service


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_service(tmp_path_factory.mktemp("sdk-live")) as running:
        yield running


@pytest.fixture
async def client(live: Live) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(live.url, api_key=live.api_key, timeout=10) as cf:
        yield cf
