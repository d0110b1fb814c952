"""Live events: a tail of the tenant's stream (plain JS `EventSource`), and one envelope.

The tail page only renders the type filters; `static/live.js` connects to
`/v1/notifications/stream` (the session cookie authenticates, same origin) and reconnects
with `Last-Event-ID` after a restart. An envelope's page finds the event through
`GET /v1/events?since=` using the time in its id (or the `?at=` time a link passes), so
nothing extra is kept anywhere.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from causeflow.clock import ms_to_rfc3339, parse_rfc3339
from causeflow.dashboard.api import ApiError
from causeflow.dashboard.forms import id_time_ms
from causeflow.dashboard.page import DashboardRoute, SignedIn
from causeflow_sdk.models import CATALOG_TYPES, OPERATIONAL_TYPES

router = APIRouter(route_class=DashboardRoute)

STREAM_PATH = "/v1/notifications/stream"
ALL_TYPES: tuple[str, ...] = (*CATALOG_TYPES, *OPERATIONAL_TYPES)
# The log is searched from shortly before the id's time (clocks of several nodes differ a
# little) for a few pages; an event is committed within moments of taking its id.
SEARCH_SKEW_MS = 5_000
SEARCH_PAGES = 5


def chosen_types(request: Request) -> list[str]:
    picked: list[str] = []
    for value in request.query_params.getlist("events"):
        picked += [v.strip() for v in value.split(",") if v.strip() in ALL_TYPES]
    return list(dict.fromkeys(picked))


@router.get("/events")
async def live_events(page: SignedIn) -> Response:
    chosen = chosen_types(page.request)
    return page.render(
        "events.html",
        active="events",
        types=ALL_TYPES,
        chosen=chosen,
        stream_path=STREAM_PATH,
    )


def search_from_ms(event_id: str, hint: str | None) -> int | None:
    """Where to start looking for an event: its id's time, or the `at` hint if earlier.

    Links from pages that know the event's timestamp pass it as `?at=`: an id can carry a
    later time than its commit (ids stay sortable after a clock step back).
    """
    if not event_id.startswith("evt_"):
        return None
    at_ms = id_time_ms(event_id)
    if at_ms is None:
        return None
    if hint:
        try:
            at_ms = min(at_ms, parse_rfc3339(hint))
        except ValueError:
            pass
    return max(0, at_ms - SEARCH_SKEW_MS)


@router.get("/events/{event_id}")
async def event_detail(event_id: str, page: SignedIn) -> Response:
    from_ms = search_from_ms(event_id, page.request.query_params.get("at"))
    envelope = None
    if from_ms is not None:
        since = ms_to_rfc3339(from_ms)
        cursor = None
        for _ in range(SEARCH_PAGES):
            found = await page.api.get("/v1/events", since=since, limit=100, cursor=cursor)
            envelope = next((e for e in found["items"] if e.get("id") == event_id), None)
            cursor = found.get("cursor")
            if envelope is not None or not cursor:
                break
    if envelope is None:
        raise ApiError(404, "not_found", f"no event {event_id} in this tenant's log")
    return page.render("event.html", active="events", envelope=envelope)
