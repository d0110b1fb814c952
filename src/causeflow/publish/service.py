"""`POST /v1/events`: who may publish which type (docs/reference.md §3.3), validation, side effects.

`events:publish` keys may publish the types no resource here owns (investigation.*,
trigger.event_received, knowledge.pattern_extracted); those naming an incident or a trigger
must name one of the tenant's. `admin` may publish any catalog type with no reference checks.
Features register effects (e.g. the first investigation.progress moves its incident to
`investigating`) that run in the same transaction. On PostgreSQL concurrent publishes of a
process share one transaction (`publisher`, a db/batcher.py `Batcher`): one BEGIN, NOTIFY and
COMMIT, one position reservation and one insert per tenant for a burst; each still answers
after the commit with its own event, and one that fails (an unknown incident) fails alone.

`POST /v1/events/batch` runs the same checks on each of its events (`prepare_all`) and stores
them in one transaction of their own (`publish_all`): all of them or none, refusals naming the
event (`events.<index>`).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from causeflow.auth.principal import Principal
from causeflow.context import AppContext
from causeflow.db.batcher import Batcher
from causeflow.db.engine import Tx
from causeflow.errors import CauseFlowError, Forbidden, ValidationFailed
from causeflow.event.log import StoredEvent, append_events, lock_log_heads
from causeflow.incident.repository import require_incident
from causeflow.tracing import spans
from causeflow.trigger.service import require_trigger
from causeflow_sdk.models import CATALOG_TYPES, DataValidationError, validate_data

PRODUCER_TYPES = frozenset(
    {
        "investigation.progress",
        "investigation.completed",
        "investigation.known_solution_found",
        "trigger.event_received",
        "knowledge.pattern_extracted",
    }
)

# An effect runs right after its event, in the same transaction: (tx, tenant id, data, now_ms,
# before_append). It awaits `before_append()` before writing anything that must follow its event
# in the log; an effect that changes nothing (most do not) so leaves the batch's events to be
# appended together instead of one at a time.
Effect = Callable[[Tx, str, dict[str, Any], int, Callable[[], Awaitable[None]]], Awaitable[None]]
# event type -> its effects
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
    if "incidentId" in data:
        await require_incident(tx, tenant_id, data["incidentId"])
    if "triggerId" in data:
        await require_trigger(tx, tenant_id, data["triggerId"])


@dataclass(frozen=True, slots=True)
class Publish:
    """One checked and validated `POST /v1/events`, waiting for its transaction."""

    tenant_id: str
    check_references: bool  # producers may only name the tenant's incidents and triggers
    event_type: str
    data: dict[str, Any]
    test: bool
    now_ms: int
    # the request's span (tracing on), taken where the publish is made: on PostgreSQL a batch
    # appends it in a task of its own
    traceparent: str | None = field(default_factory=spans.current_traceparent)


def prepare(
    principal: Principal, *, event_type: str, data: Any, test: bool, now_ms: int
) -> Publish:
    """Permission and schema checks (nothing read or written yet)."""
    check_publish(principal, event_type)
    try:
        clean = validate_data(event_type, data)
    except DataValidationError as exc:
        raise ValidationFailed(
            "the event data does not match its schema", details={"errors": exc.errors}
        ) from exc
    assert principal.tenant_id is not None
    return Publish(principal.tenant_id, not principal.is_admin, event_type, clean, test, now_ms)


MAX_BATCH_EVENTS = 100  # events of one `POST /v1/events/batch`


def at_item(exc: CauseFlowError, index: int) -> CauseFlowError:
    """`exc` as the refusal of the batch's event `index`: validation paths under
    `events.<index>.`, other refusals with the index in their message and details."""
    where = f"events.{index}"
    located = copy.copy(exc)
    errors = (exc.details or {}).get("errors")
    if isinstance(exc, ValidationFailed) and isinstance(errors, list):
        located.details = {
            "errors": [{**e, "path": f"{where}.{e['path']}"} for e in errors],
        }
    else:
        located.details = {**(exc.details or {}), "index": index}
    located.message = f"{where}: {exc.message}"
    return located


def prepare_all(
    principal: Principal, items: Iterable[tuple[str, Any, bool]], *, now_ms: int
) -> list[Publish]:
    """`prepare` for each (event type, data, test) of a batch. Every validation problem of every
    event is reported together; any other refusal (403) of the first event refused at once."""
    prepared: list[Publish] = []
    problems: list[dict[str, Any]] = []
    for index, (event_type, data, test) in enumerate(items):
        try:
            prepared.append(
                prepare(principal, event_type=event_type, data=data, test=test, now_ms=now_ms)
            )
        except ValidationFailed as exc:
            problems.extend(at_item(exc, index).details["errors"])  # type: ignore[index]
        except CauseFlowError as exc:
            raise at_item(exc, index) from exc
    if problems:
        raise ValidationFailed(
            "events of the batch are not valid; none was published", details={"errors": problems}
        )
    return prepared


async def publish_all(ctx: AppContext, batch: list[Publish]) -> list[StoredEvent]:
    """Store a batch in one transaction of its own, all of it or nothing (never shared through
    `publisher`, whose failed bursts are retried item by item); returns its events once
    committed. A refusal met in the transaction (an unknown incident) names its event."""
    async with ctx.db.transaction() as tx:
        return await publish_batch(tx, batch, locate=True)


async def publish_batch(tx: Tx, batch: list[Publish], *, locate: bool = False) -> list[StoredEvent]:
    """Append a batch of publishes in the caller's transaction, as if one after another: events
    in order, each tenant's appended together until an effect is about to write (what it
    appends then follows its event). With `locate`, a refusal names its item (`at_item`)."""
    await lock_log_heads(tx, (p.tenant_id for p in batch))  # before any other row lock
    stored: list[StoredEvent | None] = [None] * len(batch)
    pending: dict[str, list[int]] = {}  # tenant -> indexes waiting to be appended

    async def flush() -> None:
        for tenant_id, indexes in pending.items():
            events = [batch[i] for i in indexes]  # each `Publish` is what the log appends
            appended = await append_events(
                tx, tenant_id=tenant_id, items=events, now_ms=batch[indexes[0]].now_ms
            )
            for i, event in zip(indexes, appended, strict=True):
                stored[i] = event
        pending.clear()

    async def stage(index: int, item: Publish) -> None:
        if item.check_references:
            await _check_references(tx, item.tenant_id, item.data)
        pending.setdefault(item.tenant_id, []).append(index)
        for effect in () if item.test else EFFECTS.get(item.event_type, ()):
            await effect(tx, item.tenant_id, item.data, item.now_ms, flush)

    for index, item in enumerate(batch):
        try:
            await stage(index, item)
        except CauseFlowError as exc:
            if not locate:
                raise
            raise at_item(exc, index) from exc
    await flush()
    return [event for event in stored if event is not None]


async def publish(ctx: AppContext, item: Publish) -> StoredEvent:
    """Store one publish; returns its event once committed.

    On PostgreSQL concurrent publishes share a transaction (`publisher`): each costs several
    round trips otherwise, and a tenant's publishes queue on its log head. On SQLite each is a
    member of the group commit already, whose statements cost microseconds: the batcher's extra
    hop would add latency and save little.
    """
    if ctx.db.dialect.multi_process:
        return await publisher(ctx).submit(item)
    async with ctx.db.transaction() as tx:
        (event,) = await publish_batch(tx, [item])
    return event


def publisher(ctx: AppContext) -> Batcher[Publish, StoredEvent]:
    """This process's queue of publishes waiting for their transaction (made on first use)."""
    found = ctx.publisher
    if found is None:
        found = ctx.publisher = Batcher("publish", ctx.db.transaction, publish_batch)
    return found
