"""The de-duplication rules of inbound alerts (docs/reference.md §6.6), as pure functions.

An alert is keyed by (tenant, provider, fingerprint). What happens to it depends only on its
status and on whether an incident is open for its key; re-deliveries are recognised by the
sender's delivery id within a time window. The service does the I/O around these decisions.
"""

from __future__ import annotations

from typing import Any, Literal

Decision = Literal["create", "attach", "resolve", "ignore"]
Action = Literal["created", "attached", "resolved", "ignored"]


def decide(status: str, has_open_incident: bool) -> Decision:
    """firing/acknowledged attach to the open incident or open one; resolved resolves it.

    An acknowledgement only attaches: docs/reference.md §7.3 has no move for it, and a
    person acknowledging in their pager says nothing about which CauseFlow status fits. With
    nothing open it opens an incident, since the problem it describes is still live.
    """
    if status == "resolved":
        return "resolve" if has_open_incident else "ignore"
    if status in ("firing", "acknowledged"):
        return "attach" if has_open_incident else "create"
    raise ValueError(f"unknown alert status {status!r}")


def delivery_is_fresh(received_at_ms: int, now_ms: int, ttl_seconds: int) -> bool:
    """Whether a recorded delivery id still suppresses a repeat (kept `ttl_seconds`)."""
    return now_ms - received_at_ms < ttl_seconds * 1000


def accepted_body(provider: str, results: list[tuple[str, str | None, Action]]) -> dict[str, Any]:
    """The 202 body: one entry per alert, in payload order."""
    return {
        "status": "accepted",
        "provider": provider,
        "alerts": [
            {"fingerprint": fingerprint, "incidentId": incident_id, "action": action}
            for fingerprint, incident_id, action in results
        ],
    }
