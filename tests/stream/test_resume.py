"""Resume with Last-Event-ID: replay from storage, then live, with no gap and no duplicate."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import orjson
import pytest
from sqlalchemy import delete

from causeflow.event.tables import events
from tests.stream.live import FAST, LiveService, live_service, next_event, next_events
from tests.support.inproc import make_settings

pytestmark = pytest.mark.integration


async def _publisher(live: LiveService, tenant: object, total: int, seed: int) -> None:
    rng = random.Random(seed)
    sent = 0
    while sent < total:
        batch = min(rng.randint(1, 6), total - sent)
        await live.publish(tenant, batch, per_tx=batch)  # type: ignore[arg-type]
        sent += batch
        await asyncio.sleep(rng.choice((0, 0, 0.001, 0.003)))


async def test_cut_clients_resume_exactly_once_in_order_while_publishing(
    live: LiveService,
) -> None:
    acme = await live.tenant()
    total, per_connection = 1000, 150
    [mark] = await live.publish(acme)
    # Two publishers at once: positions are commit order, whatever the interleaving.
    publishers = [asyncio.create_task(_publisher(live, acme, total // 2, seed)) for seed in (1, 2)]
    received: list[str] = []
    last = mark.id
    connections = 0
    async with asyncio.timeout(40):
        while len(received) < total:
            # `?lastEventId=` works like the header.
            if connections % 2:
                stream = live.stream(acme, lastEventId=last)
            else:
                stream = live.stream(acme, last_event_id=last)
            connections += 1
            async with stream:
                for _ in range(min(per_connection, total - len(received))):
                    event = await next_event(stream)
                    assert event.event == "incident.created", event
                    assert event.id == event.json()["id"]
                    received.append(event.id)
                    last = event.id
    await asyncio.gather(*publishers)
    expected = await live.log_ids(acme)
    expected = expected[expected.index(mark.id) + 1 :]
    assert connections >= 6
    assert len(expected) == total
    assert len(set(received)) == len(received), "a duplicate at a seam"
    assert received == expected


async def test_resume_from_the_head_continues_live(live_sqlite: LiveService) -> None:
    live = live_sqlite
    acme = await live.tenant()
    first = await live.publish(acme, 3)
    async with live.stream(acme, last_event_id=first[-1].id) as stream:
        more = await live.publish(acme, 2)
        got = await next_events(stream, 2)
    assert [e.id for e in got] == [e.id for e in more]


async def test_replay_respects_filters(live_sqlite: LiveService) -> None:
    acme = await live_sqlite.tenant()
    [mark] = await live_sqlite.publish(acme, 1, "incident.created")
    created = await live_sqlite.publish(acme, 2, "incident.created")
    await live_sqlite.publish(acme, 3, "incident.status_changed")
    async with live_sqlite.stream(acme, last_event_id=mark.id, events="incident.created") as stream:
        replayed = await next_events(stream, 2)
        await live_sqlite.publish(acme, 1, "incident.status_changed")
        live_one = await live_sqlite.publish(acme, 1, "incident.created")
        assert (await next_event(stream)).id == live_one[0].id
    assert [e.id for e in replayed] == [e.id for e in created]


async def _reset_then_live(live: LiveService, tenant: object, last_id: str) -> dict[str, str]:
    async with live.stream(tenant, last_event_id=last_id) as stream:  # type: ignore[arg-type]
        reset = await next_event(stream)
        assert reset.event == "reset"
        assert reset.id is None
        [fresh] = await live.publish(tenant)  # type: ignore[arg-type]
        after = await next_event(stream)
        assert after.id == fresh.id, "after a reset the stream continues live from the head"
        return orjson.loads(reset.data)  # type: ignore[no-any-return]


async def test_unknown_and_foreign_cursors_are_reset(live: LiveService) -> None:
    acme, globex = await live.tenant("acme"), await live.tenant("globex")
    await live.publish(acme, 2)
    missing = "evt_01M8E9MVA57MBW9DQG99WVY68V"
    assert await _reset_then_live(live, acme, missing) == {
        "reason": "cursor_expired",
        "lastEventId": missing,
    }
    # Another tenant's event id is as unknown here as a made-up one.
    [theirs] = await live.publish(globex)
    data = await _reset_then_live(live, acme, theirs.id)
    assert data == {"reason": "cursor_expired", "lastEventId": theirs.id}


async def test_a_purged_event_is_an_expired_cursor(live_sqlite: LiveService) -> None:
    acme = await live_sqlite.tenant()
    old = await live_sqlite.publish(acme, 3)
    async with live_sqlite.ctx.db.transaction() as tx:
        await tx.execute(delete(events).where(events.c.id == old[0].id))
    data = await _reset_then_live(live_sqlite, acme, old[0].id)
    assert data["reason"] == "cursor_expired"
    # A cursor that is still retained replays as usual.
    async with live_sqlite.stream(acme, last_event_id=old[1].id) as stream:
        assert (await next_event(stream)).id == old[2].id


@pytest.mark.parametrize("backlog", [5, 6])
async def test_too_far_behind_is_reset_at_the_limit(tmp_path: Path, backlog: int) -> None:
    async with live_service(make_settings(tmp_path, sse_max_replay=5, **FAST)) as svc:
        acme = await svc.tenant()
        [mark] = await svc.publish(acme)
        behind = await svc.publish(acme, backlog, per_tx=backlog)
        if backlog <= 5:  # exactly the limit still replays
            async with svc.stream(acme, last_event_id=mark.id) as stream:
                assert [e.id for e in await next_events(stream, backlog)] == [e.id for e in behind]
        else:
            data = await _reset_then_live(svc, acme, mark.id)
            assert data == {"reason": "too_far_behind", "lastEventId": mark.id}
