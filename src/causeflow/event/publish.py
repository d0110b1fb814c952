"""`POST /v1/events`: who may publish which type (contract 3.3), validation, side effects.

`events:publish` keys may publish the types no resource here owns (investigation.*,
trigger.event_received, knowledge.pattern_extracted); those naming an incident or a trigger
must name one of the tenant's. `admin` may publish any catalog type with no reference checks.
Features register effects (e.g. the first investigation.progress moves its incident to
`investigating`) that run in the same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from causeflow.auth.principal import Principal
from causeflow.db.engine import Tx
from causeflow.errors import Forbidden, NotFound, ValidationFailed
from causeflow.event.log import StoredEvent, append_event
from causeflow.models import CATALOG_TYPES, DataValidationError, validate_data

PRODUCER_TYPES = frozenset(
    {
        "investigation.progress",
        "investigation.completed",
        "investigation.known_solution_found",
        "trigger.event_received",
        "knowledge.pattern_extracted",
    }
)

Effect = Callable[[Tx, str, dict[str, Any], int], Awaitable[None]]
# event type -> effects run after the event is appended, in the same transaction
EFFECTS: dict[str, list[Effect]] = {}


def register_effect(event_type: str, effect: Effect) -> None:
    if effect not in EFFECTS.setdefault(event_type, []):
        EFFECTS[event_type].append(effect)


def check_publish(principal: Principal, event_type: str) -> None:
    if event_type not in CATALOG_TYPES:
        raise ValidationFailed.at("event", f"unknown event type {event_type!r}")
    if principal.is_admin:
        return
    if event_type not in PRODUCER_TYPES:
        raise Forbidden(f"{event_type} is emitted by its resource's endpoints, not published")


async def _check_references(tx: Tx, tenant_id: str, data: dict[str, Any]) -> None:
    from causeflow.incident.tables import incidents
    from causeflow.trigger.tables import triggers

    if "incidentId" in data:
        found = (
            await tx.execute(
                select(incidents.c.id).where(
                    incidents.c.id == data["incidentId"], incidents.c.tenant_id == tenant_id
                )
            )
        ).first()
        if found is None:
            raise NotFound("no such incident", code="incident_not_found")
    if "triggerId" in data:
        found = (
            await tx.execute(
                select(triggers.c.id).where(
                    triggers.c.id == data["triggerId"], triggers.c.tenant_id == tenant_id
                )
            )
        ).first()
        if found is None:
            raise NotFound("no such trigger", code="trigger_not_found")


async def publish_event(
    tx: Tx, principal: Principal, *, event_type: str, data: Any, test: bool, now_ms: int
) -> StoredEvent:
    check_publish(principal, event_type)
    try:
        clean = validate_data(event_type, data)
    except DataValidationError as exc:
        raise ValidationFailed(
            "the event data does not match its schema", details={"errors": exc.errors}
        ) from exc
    assert principal.tenant_id is not None
    if not principal.is_admin:
        await _check_references(tx, principal.tenant_id, clean)
    stored = await append_event(
        tx,
        tenant_id=principal.tenant_id,
        event_type=event_type,
        data=clean,
        now_ms=now_ms,
        test=test,
    )
    if not test:
        for effect in EFFECTS.get(event_type, ()):
            await effect(tx, principal.tenant_id, clean, now_ms)
    return stored
