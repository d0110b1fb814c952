"""Incidents and approvals, as pages over `/v1/incidents…` and `/v1/notifications/approvals…`.

The list filters by status and severity; an incident's page shows its alerts, its timeline of
events and one button per status the lifecycle table allows next (the table is imported from
`incident.lifecycle`, so the page and the API cannot disagree); pending approvals are answered
with approve or reject.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.responses import Response

from causeflow.dashboard.api import ApiError
from causeflow.dashboard.page import DashboardRoute, Page, SignedIn, safe_next
from causeflow.incident.lifecycle import STATUSES, TRANSITIONS
from causeflow_sdk.models.common import SEVERITIES

router = APIRouter(route_class=DashboardRoute)

APPROVALS = "/v1/notifications/approvals"
SORTS = {"-createdAt": "Newest first", "createdAt": "Oldest first"}


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def next_statuses(current: str) -> list[str]:
    """The legal next states, in the lifecycle's own order."""
    allowed = TRANSITIONS.get(current, frozenset())
    return [s for s in STATUSES if s in allowed]


async def _incidents_page(page: Page, **values: Any) -> Response:
    query = page.request.query_params
    status = query.get("status") if query.get("status") in STATUSES else None
    severity = query.get("severity") if query.get("severity") in SEVERITIES else None
    sort = query.get("sort") if query.get("sort") in SORTS else "-createdAt"
    listing, error = await page.attempt(
        page.api.get(
            "/v1/incidents",
            status=status,
            severity=severity,
            sort=sort,
            limit=50,
            cursor=query.get("cursor"),
        )
    )
    values.setdefault("form", {"title": "", "severity": "high", "description": "", "service": ""})
    values.setdefault("form_error", None)
    return page.render(
        "incidents.html",
        status=values.pop("status_code", error.status if error else 200),
        active="incidents",
        incidents=listing,
        error=error,
        status_filter=status,
        severity_filter=severity,
        sort=sort,
        sorts=SORTS,
        statuses=STATUSES,
        severities=SEVERITIES,
        **values,
    )


@router.get("/incidents")
async def incidents(page: SignedIn) -> Response:
    return await _incidents_page(page)


@router.post("/incidents")
async def create_incident(page: SignedIn) -> Response:
    form = await page.form()
    typed = {k: _text(form, k).strip() for k in ("title", "severity", "description", "service")}
    body = {k: v for k, v in typed.items() if v}
    try:
        created = await page.api.post("/v1/incidents", body)
    except ApiError as exc:
        if exc.status == 401:
            raise
        return await _incidents_page(
            page, form=typed, form_error=(exc.message, exc.details), status_code=exc.status
        )
    return page.redirect(f"/ui/incidents/{created['id']}", "created")


@router.get("/incidents/{incident_id}")
async def incident(incident_id: str, page: SignedIn) -> Response:
    found = await page.api.get(f"/v1/incidents/{incident_id}")
    approvals, approvals_error = await page.attempt(
        page.api.get(f"{APPROVALS}/pending", incidentId=incident_id, limit=100)
    )
    return page.render(
        "incident.html",
        active="incidents",
        incident=found,
        next_statuses=next_statuses(found["status"]),
        approvals=approvals,
        approvals_error=approvals_error,
    )


@router.post("/incidents/{incident_id}/status")
async def change_status(incident_id: str, page: SignedIn) -> Response:
    form = await page.form()
    await page.api.patch(f"/v1/incidents/{incident_id}", {"status": _text(form, "status")})
    return page.redirect(f"/ui/incidents/{incident_id}", "status-changed")


@router.get("/approvals")
async def approvals(page: SignedIn) -> Response:
    listing, error = await page.attempt(
        page.api.get(
            f"{APPROVALS}/pending", limit=100, cursor=page.request.query_params.get("cursor")
        )
    )
    return page.render(
        "approvals.html",
        status=error.status if error else 200,
        active="approvals",
        approvals=listing,
        error=error,
    )


@router.post("/approvals/{approval_id}/respond")
async def respond(approval_id: str, page: SignedIn) -> Response:
    form = await page.form()
    decision = _text(form, "decision")
    body: dict[str, Any] = {"decision": decision}
    notes = _text(form, "notes").strip()
    if notes:
        body["notes"] = notes
    await page.api.post(f"{APPROVALS}/{approval_id}/respond", body)
    back = safe_next(_text(form, "back"), "/ui/approvals")
    return page.redirect(back, "approved" if decision == "approved" else "rejected")
