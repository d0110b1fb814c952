"""The publish budget and `Idempotency-Key`: a replayed publish is answered from the record and
spends nothing, and a publish refused for the budget (429, "try again later") does not keep its
key, so the client's retry with the same key after `Retry-After` is published."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from causeflow_sdk.models import sample_data
from tests.support.clock import FrozenClock
from tests.support.inproc import make_settings, running_service

pytestmark = pytest.mark.integration


def _window_clock() -> FrozenClock:
    now = int(time.time() * 1000)
    return FrozenClock(start_ms=now - now % 60_000)


def _event(title: str) -> dict[str, object]:
    return {"event": "incident.created", "data": sample_data("incident.created", title=title)}


async def test_replays_spend_nothing_and_a_429_leaves_the_key_free(tmp_path: Path) -> None:
    clock = _window_clock()
    settings = make_settings(tmp_path, publish_rate_limit_per_minute=2)
    async with running_service(settings, clock) as service:
        acme = await service.tenant("acme")

        async def post(key: str, title: str) -> tuple[int, str, str | None]:
            headers = {**acme.key_headers, "Idempotency-Key": key}
            resp = await service.client.post("/v1/events", headers=headers, json=_event(title))
            return resp.status_code, resp.text, resp.headers.get("idempotent-replayed")

        first = await post("k-1", "one")
        assert first[0] == 201
        for _ in range(5):  # the client retries: each is the stored answer, free of charge
            assert await post("k-1", "one") == (201, first[1], "true")
        assert (await post("k-2", "two"))[0] == 201  # the second of the budget of 2
        refused = await post("k-3", "three")
        assert refused[0] == 429 and '"rate_limit_exceeded"' in refused[1]
        clock.advance(60)  # after Retry-After, the same request with the same key
        again = await post("k-3", "three")
        assert again[0] == 201, again[1]
        assert again[2] is None  # run, not replayed
