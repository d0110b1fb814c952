"""Who is calling, and what they may do: the role/scope table of docs/reference.md §8.3 (pure).

A `Principal` comes from a JWT (roles admin/member), an API key (scopes), a stream ticket or a
dashboard session. `allows(principal, action)` is the whole policy; routers name an action.
Tenant management (`Action.PLATFORM`) belongs to the platform admin alone, and only the
service's own tokens can make one: a token from an external identity provider (`external`)
never manages tenants, whatever roles it claims.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum

ROLES = ("admin", "member")
# Roles only the service's own tokens carry: `viewer` (read only) is what a portal link's viewer
# session acts as; an external identity provider's token claiming it gets nothing from it.
OWN_ROLES = (*ROLES, "viewer")
SCOPES = ("admin", "events:publish", "events:read", "alerts:ingest")


class Action(StrEnum):
    READ = "read"  # read tenant data: incidents, events, subscriptions, deliveries
    WRITE = "write"  # admin writes: subscriptions, users, keys, tenant, approvals
    OPERATE = "operate"  # member-level writes: incidents, propose/execute remediations
    PRODUCE = "produce"  # machine producers: propose/execute remediations, trigger events
    PUBLISH = "publish"  # POST /v1/events (which types: see publish.service rules)
    STREAM = "stream"  # GET /v1/notifications/stream
    INGEST = "ingest"  # inbound alerts
    PLATFORM = "platform"  # tenant management


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # "user" | "api_key" | "platform_admin" | "ticket" | "session"
    subject: str  # user id, key id, or "platform"
    tenant_id: str | None
    roles: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)
    expires_at: float | None = None  # unix seconds; None = does not expire (API keys)
    email: str | None = None
    key_id: str | None = None
    external: bool = False  # a JWT verified against the configured JWKS, not the service's own
    # the dashboard session (hash of its id) this principal came through, or a ticket was
    # minted from; the credential stands only while that session does
    session_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles or "admin" in self.scopes

    @property
    def actor(self) -> str:
        """How events name who did something (`approvedBy`, `connectedBy`, ...)."""
        return self.email or self.subject

    @property
    def identity(self) -> str:
        """Who is calling with what authority, as one string: two credentials share it only when
        they name the same subject of the same tenant with the same kind, origin, key, roles and
        scopes (what an `Idempotency-Key` belongs to)."""
        # JSON, so no value (a subject comes from a token) can pass for a field boundary.
        return json.dumps(
            [
                self.kind,
                "external" if self.external else "own",
                self.tenant_id,
                self.subject,
                self.key_id,
                sorted(self.roles),
                sorted(self.scopes),
            ]
        )


_ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    "admin": frozenset(
        {Action.READ, Action.WRITE, Action.OPERATE, Action.PRODUCE, Action.PUBLISH, Action.STREAM}
    ),
    "member": frozenset({Action.READ, Action.OPERATE, Action.STREAM}),
    # read-only: what a portal link's viewer session acts as (the dashboard's pages read)
    "viewer": frozenset({Action.READ}),
}
_SCOPE_ACTIONS: dict[str, frozenset[Action]] = {
    "admin": _ROLE_ACTIONS["admin"],
    "events:read": frozenset({Action.READ, Action.STREAM}),
    "events:publish": frozenset({Action.PUBLISH, Action.PRODUCE}),
    "alerts:ingest": frozenset({Action.INGEST}),
}


def allows(principal: Principal, action: Action) -> bool:
    if principal.kind == "platform_admin":
        return action is Action.PLATFORM and not principal.external
    if principal.tenant_id is None:
        return False
    if principal.kind == "ticket":
        return action is Action.STREAM
    granted: set[Action] = set()
    for role in principal.roles:
        granted |= _ROLE_ACTIONS.get(role, frozenset())
    for scope in principal.scopes:
        granted |= _SCOPE_ACTIONS.get(scope, frozenset())
    return action in granted
