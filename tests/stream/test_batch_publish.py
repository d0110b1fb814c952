"""A stream sees every event of a `POST /v1/events/batch`, in the batch's order, byte for byte
as the batch's answer carries them (on both backends, over real sockets)."""

from __future__ import annotations

import orjson
import pytest

from causeflow_sdk.models import sample_data
from tests.stream.live import LiveService, next_events, opened

pytestmark = pytest.mark.integration


async def test_a_stream_receives_a_batch_in_order(live: LiveService) -> None:
    acme = await live.tenant()
    items = [
        {"event": "incident.created", "data": sample_data("incident.created", title=f"t{i}")}
        for i in range(50)
    ]
    async with live.stream(acme) as stream:
        await opened(stream)
        async with live.session.post(
            live.base_url + "/v1/events/batch",
            headers=acme.key_headers,
            json={"events": items},
        ) as resp:
            assert resp.status == 200, await resp.text()
            answered = [r["event"] for r in (await resp.json())["items"]]
        got = await next_events(stream, 50)
    assert [e.id for e in got] == [e["id"] for e in answered]
    assert [orjson.loads(e.data) for e in got] == answered
