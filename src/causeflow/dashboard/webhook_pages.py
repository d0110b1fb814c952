"""Webhook subscriptions and their deliveries, as pages over `/v1/webhook-subscriptions…`.

List and create (the secret is shown once, on the page the POST answers), edit, enable or
disable, rotate the secret, send a test event, delete; per subscription its deliveries with
status filters, its health (`…/stats`: rates, latencies, backlog) and a 24-hour chart, recover
and replay windows; one delivery's attempts; the search across subscriptions (`/v1/deliveries`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.responses import Response

from causeflow.dashboard.api import ApiError
from causeflow.dashboard.chart import HOUR_MS, buckets_from_series, delivery_chart
from causeflow.dashboard.events_pages import ALL_TYPES
from causeflow.dashboard.forms import (
    DESTINATION_FIELDS,
    DESTINATION_TYPES,
    FormError,
    format_destination,
    format_filter,
    format_headers,
    local_to_rfc3339,
    ms_to_local,
    parse_destination,
    parse_events,
    parse_filter,
    parse_headers,
)
from causeflow.dashboard.page import DashboardRoute, Page, SignedIn, safe_next

router = APIRouter(route_class=DashboardRoute)

SUBS = "/v1/webhook-subscriptions"
STATUSES = ("pending", "succeeded", "failed", "cancelled")


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _option_fields(form: FormData) -> dict[str, str]:
    """Every `<type>.<field>` value the form carries (all types' fields are on the page)."""
    return {
        f"{type_}.{name}": _text(form, f"{type_}.{name}")
        for type_, names in DESTINATION_FIELDS.items()
        for name in names
    }


def _body_from_form(form: FormData) -> dict[str, Any]:
    """The fields the create and edit forms share, as the API's JSON (raises FormError)."""
    events = parse_events([v for v in form.getlist("events") if isinstance(v, str)], ALL_TYPES)
    rate = _text(form, "rateLimitPerSecond").strip()
    if rate and not rate.isdigit():
        raise FormError("rate limit: a whole number of deliveries per second")
    type_, options = parse_destination(_text(form, "type"), _option_fields(form))
    return {
        "type": type_,
        "url": _text(form, "url").strip(),
        "options": options,
        "events": events,
        "description": _text(form, "description").strip() or None,
        "filter": parse_filter(_text(form, "filter")),
        "headers": parse_headers(_text(form, "headers")),
        "rateLimitPerSecond": int(rate) if rate else None,
    }


def _form_values(sub: dict[str, Any] | None) -> dict[str, Any]:
    sub = sub or {}
    type_ = sub.get("type") or "webhook"
    options: dict[str, str] = {}
    for each in DESTINATION_FIELDS:
        options |= format_destination(each, sub.get("options") if each == type_ else None)
    options["mqtt.qos"] = options["mqtt.qos"] or "1"
    return {
        "type": type_,
        "options": options,
        "url": sub.get("url", ""),
        "events": sub.get("events", ["*"]),
        "description": sub.get("description") or "",
        "filter": format_filter(sub.get("filter")),
        "headers": format_headers(sub.get("headers")),
        "rateLimitPerSecond": sub.get("rateLimitPerSecond") or "",
    }


def _typed_values(form: FormData) -> dict[str, Any]:
    return {
        "type": _text(form, "type") or "webhook",
        "options": _option_fields(form),
        "url": _text(form, "url"),
        "events": [v for v in form.getlist("events") if isinstance(v, str)],
        "description": _text(form, "description"),
        "filter": _text(form, "filter"),
        "headers": _text(form, "headers"),
        "rateLimitPerSecond": _text(form, "rateLimitPerSecond"),
    }


async def _list_page(page: Page, **values: Any) -> Response:
    cursor = page.request.query_params.get("cursor")
    subs, error = await page.attempt(page.api.get(SUBS, limit=50, cursor=cursor))
    values.setdefault("form", _form_values(None))
    values.setdefault("form_error", None)
    return page.render(
        "subscriptions.html",
        status=error.status if error else values.pop("status", 200),
        active="subscriptions",
        subs=subs,
        error=error,
        types=ALL_TYPES,
        destination_types=DESTINATION_TYPES,
        destination_fields=DESTINATION_FIELDS,
        **values,
    )


@router.get("/subscriptions")
async def subscriptions(page: SignedIn) -> Response:
    return await _list_page(page)


@router.post("/subscriptions")
async def create_subscription(page: SignedIn) -> Response:
    form = await page.form()
    try:
        body = _body_from_form(form)
        body = {k: v for k, v in body.items() if v is not None}
        created = await page.api.post(SUBS, body)
    except (FormError, ApiError) as exc:
        message = exc.message if isinstance(exc, ApiError) else str(exc)
        details = exc.details if isinstance(exc, ApiError) else None
        status = exc.status if isinstance(exc, ApiError) else 422
        return await _list_page(
            page, form=_typed_values(form), form_error=(message, details), status=status
        )
    return page.render(
        "secret.html", status=201, active="subscriptions", sub=created, rotated=False
    )


async def _subscription_page(
    page: Page, sub_id: str, *, form: dict[str, Any] | None = None, **values: Any
) -> Response:
    sub = await page.api.get(f"{SUBS}/{sub_id}")
    values.setdefault("form_error", None)
    return page.render(
        "subscription.html",
        status=values.pop("status", 200),
        active="subscriptions",
        sub=sub,
        form=form or _form_values(sub),
        types=ALL_TYPES,
        destination_types=DESTINATION_TYPES,
        destination_fields=DESTINATION_FIELDS,
        **values,
    )


@router.get("/subscriptions/{sub_id}")
async def subscription(sub_id: str, page: SignedIn) -> Response:
    return await _subscription_page(page, sub_id)


@router.post("/subscriptions/{sub_id}")
async def edit_subscription(sub_id: str, page: SignedIn) -> Response:
    form = await page.form()
    try:
        await page.api.patch(f"{SUBS}/{sub_id}", _body_from_form(form))
    except (FormError, ApiError) as exc:
        if isinstance(exc, ApiError) and exc.status in (401, 404):
            raise
        message = exc.message if isinstance(exc, ApiError) else str(exc)
        details = exc.details if isinstance(exc, ApiError) else None
        return await _subscription_page(
            page,
            sub_id,
            form=_typed_values(form),
            form_error=(message, details),
            status=exc.status if isinstance(exc, ApiError) else 422,
        )
    return page.redirect(f"/ui/subscriptions/{sub_id}", "saved")


@router.post("/subscriptions/{sub_id}/enabled")
async def set_enabled(sub_id: str, page: SignedIn) -> Response:
    form = await page.form()
    enabled = _text(form, "enabled") == "true"
    await page.api.patch(f"{SUBS}/{sub_id}", {"enabled": enabled})
    return page.redirect(f"/ui/subscriptions/{sub_id}", "enabled" if enabled else "disabled")


@router.post("/subscriptions/{sub_id}/rotate-secret")
async def rotate_secret(sub_id: str, page: SignedIn) -> Response:
    await page.form()
    rotated = await page.api.post(f"{SUBS}/{sub_id}/rotate-secret", {})
    return page.render("secret.html", active="subscriptions", sub=rotated, rotated=True)


@router.post("/subscriptions/{sub_id}/test")
async def send_test(sub_id: str, page: SignedIn) -> Response:
    form = await page.form()
    event = _text(form, "event") or "incident.created"
    await page.api.post(f"{SUBS}/{sub_id}/test", {"event": event})
    return page.redirect(f"/ui/subscriptions/{sub_id}/deliveries", "test-sent")


@router.post("/subscriptions/{sub_id}/delete")
async def delete_subscription(sub_id: str, page: SignedIn) -> Response:
    await page.form()
    await page.api.delete(f"{SUBS}/{sub_id}")
    return page.redirect("/ui/subscriptions", "deleted")


@router.get("/subscriptions/{sub_id}/deliveries")
async def deliveries(sub_id: str, page: SignedIn) -> Response:
    query = page.request.query_params
    status = query.get("status") if query.get("status") in STATUSES else None
    event = query.get("event") if query.get("event") in ALL_TYPES else None
    sub = await page.api.get(f"{SUBS}/{sub_id}")
    listing = await page.api.get(
        f"{SUBS}/{sub_id}/deliveries",
        limit=50,
        status=status,
        event=event,
        cursor=query.get("cursor"),
    )
    now_ms = page.ctx.clock.now_ms()
    stats = await page.api.get(f"{SUBS}/{sub_id}/stats")
    buckets = buckets_from_series(stats["series"])
    return page.render(
        "deliveries.html",
        active="subscriptions",
        sub=sub,
        deliveries=listing,
        status_filter=status,
        event_filter=event,
        statuses=STATUSES,
        types=ALL_TYPES,
        chart=delivery_chart(buckets),
        buckets=buckets,
        stats=stats,
        window_since=ms_to_local(now_ms - 24 * HOUR_MS),
        window_until=ms_to_local(now_ms + 60_000),
    )


@router.post("/subscriptions/{sub_id}/recover")
async def recover(sub_id: str, page: SignedIn) -> Response:
    """Every failed delivery created in the window is scheduled again."""
    return await _window(page, sub_id, "recover")


@router.post("/subscriptions/{sub_id}/replay")
async def replay(sub_id: str, page: SignedIn) -> Response:
    """Every matching event of the log in the window is delivered again."""
    return await _window(page, sub_id, "replay")


async def _window(page: Page, sub_id: str, action: str) -> Response:
    form = await page.form()
    try:
        body = {"since": local_to_rfc3339(_text(form, "since"))}
        if _text(form, "until").strip():
            body["until"] = local_to_rfc3339(_text(form, "until"))
    except FormError as exc:
        raise ApiError(422, "validation_error", str(exc)) from exc
    result = await page.api.post(f"{SUBS}/{sub_id}/{action}", body)
    notice = "recovered" if action == "recover" else "replayed"
    return page.redirect(
        f"/ui/subscriptions/{sub_id}/deliveries", notice, n=int(result.get("scheduled", 0))
    )


SEARCH_FIELDS = ("eventId", "incidentId", "subscriptionId")


@router.get("/deliveries")
async def search(page: SignedIn) -> Response:
    """Where did an event go: deliveries across subscriptions, by event, incident, status, time."""
    query = page.request.query_params
    fields = {name: (query.get(name) or "").strip()[:64] for name in SEARCH_FIELDS}
    status = query.get("status") if query.get("status") in STATUSES else None
    try:
        since = local_to_rfc3339(query["since"]) if query.get("since") else None
        until = local_to_rfc3339(query["until"]) if query.get("until") else None
    except FormError as exc:
        raise ApiError(422, "validation_error", str(exc)) from exc
    listing = await page.api.get(
        "/v1/deliveries",
        limit=50,
        status=status,
        since=since,
        until=until,
        cursor=query.get("cursor"),
        **{k: v for k, v in fields.items() if v},
    )
    return page.render(
        "delivery_search.html",
        active="deliveries",
        deliveries=listing,
        fields=fields,
        status_filter=status,
        statuses=STATUSES,
        since=query.get("since") or "",
        until=query.get("until") or "",
    )


@router.get("/deliveries/{delivery_id}")
async def delivery(delivery_id: str, page: SignedIn) -> Response:
    found = await page.api.get(f"/v1/deliveries/{delivery_id}")
    return page.render("delivery.html", active="subscriptions", delivery=found)


@router.post("/deliveries/{delivery_id}/retry")
async def retry(delivery_id: str, page: SignedIn) -> Response:
    form = await page.form()
    await page.api.post(f"/v1/deliveries/{delivery_id}/retry")
    back = safe_next(_text(form, "back"), f"/ui/deliveries/{delivery_id}")
    return page.redirect(back, "retry-queued")
