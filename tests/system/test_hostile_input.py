"""Hostile input against every route that reads a JSON body, on both databases.

The routes come from the app itself (the route table and the OpenAPI document) plus one inbound
route per provider, so a new route is swept as soon as it exists; every route needs a valid
base body below (`BASES`) for the hostile values to be planted in, and a new one fails this
test until it has one. Every answer must be a 4xx in the error shape, and the database must be
exactly as before (bookkeeping tables aside). One service per backend; failures are collected
into one message.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import params
from fastapi.routing import APIRoute
from sqlalchemy import select

from causeflow.clock import ms_to_rfc3339
from causeflow.ingest.providers.registry import PROVIDERS
from causeflow.schema import metadata
from causeflow_sdk.models import sample_data
from tests.support.inproc import Service, Tenant
from tests.system.test_isolation import FACTORIES

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "support" / "fixtures" / "providers"
INBOUND = "/v1/webhooks/{tenant_id}/{provider}"
# Tables a refused request may touch: replays of 4xx answers, shared rate counts.
BOOKKEEPING = {"idempotency_keys", "rate_counters"}
HOSTILE = "__hostile__"
_WINDOW = {"since": ms_to_rfc3339(int(time.time() * 1000) - 86_400_000)}

# A valid body for every route, in which the hostile values are planted.
BASES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/events/batch"): {
        "events": [
            {"event": "incident.created", "data": sample_data("incident.created", title="hostile")}
        ]
    },
    ("POST", "/v1/events"): {
        "event": "incident.created",
        "data": sample_data("incident.created", title="hostile"),
    },
    ("POST", "/v1/webhook-subscriptions"): {
        "url": "https://hooks.example.com/in",
        "events": ["*"],
        "filter": {"severity": ["critical", "high"]},
        "headers": {"X-Team": "ops"},
    },
    ("PATCH", "/v1/webhook-subscriptions/{subscription_id}"): {
        "description": "x",
        "filter": {"severity": "low"},
    },
    ("POST", "/v1/webhook-subscriptions/{subscription_id}/rotate-secret"): {},
    ("POST", "/v1/webhook-subscriptions/{subscription_id}/test"): {"event": "incident.created"},
    ("POST", "/v1/webhook-subscriptions/{subscription_id}/recover"): _WINDOW,
    ("POST", "/v1/webhook-subscriptions/{subscription_id}/replay"): _WINDOW,
    ("POST", "/v1/incidents"): {"title": "t", "severity": "low", "service": "api"},
    ("PATCH", "/v1/incidents/{incident_id}"): {"status": "triaging"},
    ("POST", "/v1/incidents/{incident_id}/remediations"): {
        "title": "t",
        "steps": ["a", "b"],
        "requiresApproval": True,
    },
    ("POST", "/v1/remediations/{remediation_id}/reject"): {"reason": "x"},
    ("POST", "/v1/remediations/{remediation_id}/executed"): {
        "outcome": "success",
        "durationMs": 1,
    },
    ("POST", "/v1/notifications/approvals/{approval_id}/respond"): {"decision": "approved"},
    ("POST", "/v1/integrations"): {"provider": "slack", "config": {"channel": "#ops"}},
    ("POST", "/v1/triggers"): {
        "slug": "hostile",
        "provider": "github",
        "action": "a",
        "config": {"repo": "x"},
    },
    ("POST", "/v1/triggers/{trigger_id}/events"): {"any": "event", "nested": {"n": [1, 2]}},
    ("POST", "/v1/tenants"): {"name": "hostile"},
    ("PATCH", "/v1/tenants/{tenant_id}"): {"plan": "pro"},
    ("PUT", "/v1/tenants/{tenant_id}/limits"): {"maxStreams": 50, "eventRetentionDays": None},
    ("PATCH", "/v1/tenant"): {"name": "renamed", "inbound": {"requireSignature": False}},
    ("POST", "/v1/users"): {"email": "hostile@b.example"},
    ("PATCH", "/v1/users/{user_id}"): {"role": "admin"},
    ("POST", "/v1/api-keys"): {"name": "k", "scopes": ["events:read"]},
    ("POST", "/v1/portal-links"): {"role": "viewer", "expiresIn": 300},
    ("POST", "/v1/tenants/{tenant_id}/portal-links"): {"role": "viewer", "expiresIn": 300},
}


def _deep(depth: int) -> bytes:
    return (
        b'{"a":' * (depth // 2)
        + b"[" * (depth - depth // 2)
        + b"1"
        + b"]" * (depth - depth // 2)
        + b"}" * (depth // 2)
    )


BIG = str(2**70).encode()
# Literal texts planted where a value goes.
VALUES: dict[str, bytes] = {
    "nesting depth 300": _deep(300),
    "integer 2**70": BIG,
    "integer -2**70": b"-" + BIG,
    "integer 2**64": str(2**64).encode(),
    "NaN": b"NaN",
    "Infinity": b"Infinity",
    "-Infinity": b"-Infinity",
    "invalid UTF-8": b'"caf\xe9 \xff\xfe"',
    "control characters": b'"a\x00b\x01c\nd\x1f"',
    "lone surrogate": b'"\\ud800"',
}
# Whole bodies, whatever the route.
WHOLE: dict[str, bytes] = {
    "top-level array": b"[]",
    "top-level string": b'"text"',
    "top-level number": b"5",
    "top-level null": b"null",
    "top-level big integer": BIG,
    "top-level NaN": b"NaN",
    "nesting depth 300 (arrays)": b"[" * 300 + b"]" * 300,
    "nesting depth 300 (objects)": b'{"a":' * 300 + b"1" + b"}" * 300,
    "invalid UTF-8 bytes": b"\xc3\x28\xa0\xa1",
    "empty body": b"",
    "whitespace only": b" \n\t ",
    "not JSON": b"{not json",
    "duplicate keys": b'{"x": 1, "x": 1}',
}


@dataclass
class Target:
    method: str
    template: str
    url: str
    headers: dict[str, str]
    base: dict[str, Any]
    optional: bool = False  # the body may be left out
    extra_headers: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.method} {self.url}"


# --- the routes --------------------------------------------------------------------------------


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        inner = getattr(route, "original_router", None)  # an included router
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from _walk(inner.routes, prefix + getattr(context, "prefix", ""))


def json_body_routes(app: Any) -> dict[tuple[str, str], bool]:
    """(method, path) of every route that reads a JSON body, declared in the OpenAPI document
    or with a non-form body parameter in the route table (hidden routes included), and whether
    the body is optional."""
    found: dict[tuple[str, str], bool] = {}
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if any(kind.endswith("json") for kind in content):
                required = operation["requestBody"].get("required", False)
                found[(method.upper(), path)] = not required
    walked = list(_walk(app.router.routes))
    assert len(walked) > 20, "the route table could not be read"
    for path, route in walked:
        body = route.body_field
        if body is not None and not isinstance(body.field_info, params.Form):
            for method in route.methods:
                found.setdefault((method, path), not body.field_info.is_required())
    return found


def _fixture(provider: str) -> dict[str, Any]:
    files = sorted(p for p in (FIXTURES / provider).glob("*.json") if p.name != "expected.json")
    assert files, f"no JSON fixture for provider {provider}"
    return orjson.loads(files[0].read_bytes())  # type: ignore[no-any-return]


async def targets(service: Service, tenant: Tenant) -> tuple[list[Target], list[str]]:
    app = service.client._transport.app  # type: ignore[attr-defined]
    platform = service.ctx.tokens.mint_platform_admin(now=service.ctx.clock.now(), ttl=3600)
    out: list[Target] = []
    missing: list[str] = []
    for (method, path), optional in sorted(json_body_routes(app).items()):
        if path == INBOUND:
            for provider in sorted(PROVIDERS):
                out.append(
                    Target(
                        method,
                        path,
                        f"/v1/webhooks/{tenant.id}/{provider}",
                        {"X-API-Key": tenant.ingest_key},
                        _fixture(provider),
                        optional,
                        [("bad signature", {"X-Webhook-Signature": b"sha256=\x01\xff\t00"})],
                    )
                )
            continue
        if (method, path) not in BASES:
            missing.append(f"{method} {path}: add a valid base body to BASES")
            continue
        ids: dict[str, str] = {}
        for param in re.findall(r"\{(\w+)\}", path):
            if param == "tenant_id":
                ids[param] = tenant.id
            elif param in FACTORIES:
                ids[param] = await FACTORIES[param](service, tenant)
            else:
                missing.append(f"{method} {path}: no factory for {{{param}}}")
        if len(ids) < path.count("{"):
            continue
        admin = path.startswith("/v1/tenants")
        headers = {"Authorization": f"Bearer {platform}"} if admin else dict(tenant.admin_headers)
        base = BASES[(method, path)]
        out.append(Target(method, path, path.format(**ids), headers, base, optional))
    return out, missing


# --- the bodies ----------------------------------------------------------------------------------


def _positions(base: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The base with the placeholder at several places: a new member, in place of each
    top-level value, inside every object and at the end of every array one level down."""
    yield "new member", {**base, "zz": HOSTILE}
    for key, value in base.items():
        yield f"{key}", {**base, key: HOSTILE}
        if isinstance(value, dict):
            yield f"{key}.zz", {**base, key: {**value, "zz": HOSTILE}}
        if isinstance(value, list):
            yield f"{key}[]", {**base, key: [*value, HOSTILE]}


def _planted(doc: Any, literal: bytes) -> bytes:
    return orjson.dumps(doc).replace(orjson.dumps(HOSTILE), literal)


def _duplicated(base: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    """The base with one key written twice (with the same value, so only refusing duplicates
    refuses it), at the top and inside each object member."""
    if not base:
        return
    key, value = next(iter(base.items()))
    yield f"duplicate {key}", orjson.dumps(base)[:-1] + b"," + orjson.dumps({key: value})[1:]
    for name, inner in base.items():
        if isinstance(inner, dict) and inner:
            k, v = next(iter(inner.items()))
            dup = orjson.dumps(inner)[:-1] + b"," + orjson.dumps({k: v})[1:]
            yield f"duplicate {name}.{k}", _planted({**base, name: HOSTILE}, dup)


def cases(target: Target, max_body: int) -> Iterator[tuple[str, bytes, dict[str, bytes]]]:
    for name, body in WHOLE.items():
        if name not in ("empty body", "top-level null") or not target.optional:
            yield name, body, {}  # (an optional body may be left out, or sent as null)
    # Large integers at every position, the other values at one each (in turn, to stay quick).
    positions = list(_positions(target.base))
    for i, (name, literal) in enumerate(VALUES.items()):
        chosen = positions if name.startswith("integer") else [positions[i % len(positions)]]
        for where, doc in chosen:
            yield f"{name} at {where}", _planted(doc, literal), {}
    yield from ((name, body, {}) for name, body in _duplicated(target.base))
    padding = max_body + 1 - len(orjson.dumps({**target.base, "zz": ""}))
    yield "body of the limit + 1", orjson.dumps({**target.base, "zz": "x" * padding}), {}
    # Header values with what real servers let through (tab, bytes above 0x7f) and more.
    nan_body = _planted({**target.base, "zz": HOSTILE}, b"NaN")
    yield "idempotency key with control characters", nan_body, {"Idempotency-Key": b"k\t\xff\x01"}
    yield "X-Webhook-Id with control characters", nan_body, {"X-Webhook-Id": b"id\t\xff\x00"}
    base = orjson.dumps(target.base)
    for name, headers in target.extra_headers:
        yield name, base, headers


CREDENTIALS: list[tuple[str, dict[str, bytes]]] = [
    ("API key with control characters", {"X-API-Key": b"cflo_\x01\xff\t" + b"0" * 60}),
    ("Bearer token with control characters", {"Authorization": b"Bearer a\x01b.\xff.\tc"}),
    ("Basic credentials with bytes above 0x7f", {"Authorization": b"Basic \xff\xfe\x01"}),
]


# --- the sweep -----------------------------------------------------------------------------------


async def snapshot(service: Service) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    async with service.ctx.db.read() as conn:
        for name, table in sorted(metadata.tables.items()):
            if name in BOOKKEEPING or name == "attempts":
                continue
            if name == "deliveries":
                # The set-up's deliveries are retried in the background while the sweep runs
                # (their status, counts and attempts move): only a new delivery is a change.
                ids = (await conn.execute(select(table.c.id))).scalars().all()
                out[name] = sorted((repr(i),) for i in ids)
                continue
            rows = (await conn.execute(select(table))).all()
            out[name] = sorted((tuple(map(repr, row)) for row in rows), key=repr)
    return out


def _problem(target: Target, case: str, status: int, text: str, expect: Callable[[int], bool]):
    if not expect(status):
        return f"{target.name} [{case}]: {status} {text[:160]}"
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return f"{target.name} [{case}]: {status} is not JSON: {text[:160]}"
    if not (
        isinstance(body, dict)
        and isinstance(body.get("error"), str)
        and re.fullmatch(r"[a-z][a-z0-9_]*", body["error"])
        and isinstance(body.get("message"), str)
        and body["message"]
    ):
        return f"{target.name} [{case}]: {status} not in the error shape: {text[:160]}"
    return None


async def _check(
    service: Service,
    target: Target,
    case: str,
    body: bytes,
    headers: dict[str, Any],
    expect: Callable[[int], bool],
) -> str | None:
    try:
        resp = await service.client.request(
            target.method, target.url, content=body, headers=headers
        )
    except Exception as exc:  # noqa: BLE001  # an exception the app let escape: a 5xx
        return f"{target.name} [{case}]: raised {type(exc).__name__}: {exc}"
    return _problem(target, case, resp.status_code, resp.text, expect)


def _4xx(status: int) -> bool:
    return 400 <= status < 500


async def test_hostile_bodies_get_4xx_in_the_error_shape_and_store_nothing(
    service: Service, tenant: Tenant
):
    swept, missing = await targets(service, tenant)
    assert not missing, "\n".join(missing)
    covered = {(t.method, t.template) for t in swept}
    app = service.client._transport.app  # type: ignore[attr-defined]
    assert covered == set(json_body_routes(app))
    assert len(swept) >= len(BASES) + len(PROVIDERS) - 1

    before = await snapshot(service)
    problems: list[str] = []
    sent = 0
    for target in swept:
        for case, body, extra in cases(target, service.ctx.settings.max_body_bytes):
            headers: dict[str, Any] = {**target.headers, "Content-Type": "application/json"}
            headers.update(extra)
            sent += 1
            problem = await _check(service, target, case, body, headers, _4xx)
            if problem:
                problems.append(problem)
        for case, credential in CREDENTIALS:
            headers = {"Content-Type": "application/json", **credential}
            sent += 1
            base = orjson.dumps(target.base)
            problem = await _check(service, target, case, base, headers, lambda s: s == 401)
            if problem:
                problems.append(problem)
    after = await snapshot(service)
    changed = [name for name in before if before[name] != after[name]]
    assert not problems, f"{len(problems)} of {sent} requests:\n" + "\n".join(problems)
    assert not changed, f"refused requests changed these tables: {changed}"

    # The base bodies themselves are accepted (or meet the resource's state, 409): so what
    # refused the requests above is what was planted in them, not the base.
    for target in swept:
        resp = await service.client.request(
            target.method,
            target.url,
            content=orjson.dumps(target.base),
            headers={**target.headers, "Content-Type": "application/json"},
        )
        if not (resp.status_code < 300 or resp.status_code == 409):
            problems.append(f"{target.name} [base body]: {resp.status_code} {resp.text[:200]}")
    assert not problems, "\n".join(problems)
