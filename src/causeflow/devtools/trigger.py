"""`causeflow trigger <event-type>`: publish a schema-valid sample event marked `"test": true`.

The data is the catalog's example for that type (`causeflow_sdk.models.sample_data`), with
`incidentId` replaced by `--incident`. It goes through `POST /v1/events` like any producer's
event, so streams, `listen` and matching subscriptions see it; it needs an `admin` key, the
scope allowed to publish every catalog type.
"""

from __future__ import annotations

import difflib
from typing import Any

import orjson

from causeflow.devtools import ToolError
from causeflow_sdk import AsyncClient, CauseFlowAPIError, CauseFlowConnectionError
from causeflow_sdk.models import CATALOG, CATALOG_TYPES, DataValidationError, Envelope, sample_data


def close_names(name: str, known: tuple[str, ...] = CATALOG_TYPES) -> list[str]:
    """Known names a typo probably meant: similar spellings, then names sharing its prefix."""
    lowered = name.strip().lower()
    similar = difflib.get_close_matches(lowered, known, n=5, cutoff=0.6)
    prefix = lowered.split(".", 1)[0]
    related = [k for k in known if prefix and (k.startswith(prefix) or prefix in k)]
    seen: dict[str, None] = dict.fromkeys(similar + related)
    return list(seen)[:8]


def unknown_type(name: str, known: tuple[str, ...] = CATALOG_TYPES) -> ToolError:
    near = close_names(name, known)
    if near:
        return ToolError(f"unknown event type {name!r}; did you mean {', '.join(near)}?")
    return ToolError(f"unknown event type {name!r}; known types: {', '.join(known)}")


def check_types(names: list[str]) -> list[str]:
    """Validate `--events` names against the catalog (operational types included)."""
    known = tuple(CATALOG)
    for name in names:
        if name not in CATALOG:
            raise unknown_type(name, known)
    return names


def sample_for(event_type: str, incident_id: str | None = None) -> dict[str, Any]:
    """The `data` to publish for `event_type`, with `incidentId` overridden when given."""
    if event_type not in CATALOG_TYPES:
        raise unknown_type(event_type)
    if incident_id is None:
        return sample_data(event_type)
    fields = CATALOG[event_type].data_model.model_fields
    if not any(info.alias == "incidentId" for info in fields.values()):
        raise ToolError(f"{event_type} events carry no incidentId; drop --incident")
    try:
        return sample_data(event_type, incidentId=incident_id)
    except DataValidationError:
        raise ToolError(
            f"--incident must be an incident id like inc_01J…, not {incident_id!r}"
        ) from None


async def publish_sample(
    api_url: str, api_key: str, event_type: str, incident_id: str | None = None
) -> Envelope:
    """Publish the sample as a test event; return the stored envelope."""
    data = sample_for(event_type, incident_id)
    async with AsyncClient(api_url, api_key=api_key) as client:
        try:
            return await client.events.publish(event_type, data, test=True)
        except CauseFlowConnectionError as exc:
            raise ToolError(
                f"cannot reach {api_url} (is `causeflow serve` running?): {exc}"
            ) from exc
        except CauseFlowAPIError as exc:
            hint = " (trigger needs an API key with the admin scope)" if exc.status == 403 else ""
            raise ToolError(f"POST /v1/events: {exc}{hint}") from exc


def pretty(envelope: Envelope) -> str:
    return orjson.dumps(envelope.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode()
