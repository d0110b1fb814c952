"""Nothing shown once is kept readable.

Every route that shows a secret once (a tenant's first API key, API keys of each scope with an
ingest key's signing secret, subscription secrets generated and given, their rotation, stream
tickets, dashboard session ids, the inbound provider secrets set through `PATCH /v1/tenant`,
integration and trigger credentials, and the CLI's `tenant create` and `token`) is called,
each creating POST twice with one `Idempotency-Key` (the original and a retry). Then every
string shown is looked for in every text column of every table, in the raw bytes of the
SQLite database, its WAL and the key file, and in the service's log output. None may appear:
what the service keeps is hashed or sealed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, select

from causeflow.auth import keyfile
from causeflow.auth.crypto import SEALED_VALUE
from causeflow.schema import metadata
from causeflow.settings import Settings
from tests.support.dashboard import set_cookie_header, sign_in
from tests.support.inproc import Service, make_settings, running_service
from tests.support.processes import Deployment, parse_json_output
from tests.support.receiver import Receiver

pytestmark = pytest.mark.process

SUBS = "/v1/webhook-subscriptions"
FAST = {"webhook_retry_schedule": "0.2s", "webhook_poll_seconds": 0.1, "run_workers": True}


class Shown:
    """Every secret the service showed, by where it was shown."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def add(self, label: str, value: Any) -> None:
        assert isinstance(value, str) and len(value) >= 16, (label, value)
        self.values.setdefault(value, label)

    def found_in(self, where: str, text: str | bytes) -> list[str]:
        if isinstance(text, bytes):
            return [f"{where}: {label}" for v, label in self.values.items() if v.encode() in text]
        return [f"{where}: {label}" for v, label in self.values.items() if v in text]


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def captured_logs() -> Iterator[Captured]:
    """The log output of the run: the service's own loggers at DEBUG, everything else at
    INFO (the libraries' debug chatter is not the service's output)."""
    handler = Captured()
    root, own = logging.getLogger(), logging.getLogger("causeflow")
    levels = root.level, own.level
    root.addHandler(handler)
    own.addHandler(handler)
    root.setLevel(logging.INFO)
    own.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        own.removeHandler(handler)
        root.setLevel(levels[0])
        own.setLevel(levels[1])


async def created(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], body: Any = None
) -> list[dict[str, Any]]:
    """POST twice with one Idempotency-Key: the original and a client's retry."""
    key = "idem-" + secrets.token_hex(8)
    out = []
    for _ in range(2):
        resp = await client.post(url, json=body, headers={**headers, "Idempotency-Key": key})
        assert resp.status_code < 300, resp.text
        out.append(resp.json())
    return out


async def settled(client: httpx.AsyncClient, headers: dict[str, str], delivery: str) -> None:
    """Wait until the delivery's outcome is recorded (attempt rows included)."""
    deadline = time.monotonic() + 10
    while True:
        resp = await client.get(f"/v1/deliveries/{delivery}", headers=headers)
        assert resp.status_code == 200, resp.text
        if resp.json()["status"] != "pending":
            return
        assert time.monotonic() < deadline, resp.text
        await asyncio.sleep(0.05)


def whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def scenario(svc: Service, shown: Shown, receiver: Receiver, cli: Deployment) -> list[str]:
    """Call every route that shows a secret; returns the log output of the CLI commands."""
    client = svc.client
    platform = svc.ctx.tokens.mint_platform_admin(now=svc.ctx.clock.now(), ttl=600)
    for body in await created(
        client, "/v1/tenants", {"Authorization": f"Bearer {platform}"}, {"name": "acme"}
    ):
        shown.add("POST /v1/tenants apiKey", body["apiKey"])
    api_key = body["apiKey"]
    admin = {"X-API-Key": api_key}

    for scope in ("admin", "events:publish", "events:read", "alerts:ingest"):
        for body in await created(
            client, "/v1/api-keys", admin, {"name": scope, "scopes": [scope]}
        ):
            shown.add(f"POST /v1/api-keys {scope} key", body["key"])
            if scope == "alerts:ingest":
                shown.add("POST /v1/api-keys webhookSecret", body["webhookSecret"])

    header_value = "Bearer receiver-" + secrets.token_hex(16)
    shown.add("subscription header value", header_value)
    url = receiver.url_for("/hook")
    generated = await created(
        client,
        SUBS,
        admin,
        {"url": url, "events": ["incident.created"], "headers": {"Authorization": header_value}},
    )
    for body in generated:
        shown.add("POST subscription, generated secret", body["secret"])
    given = whsec()
    shown.add("POST subscription, given secret", given)
    for body in await created(
        client, SUBS, admin, {"url": url, "events": ["incident.created"], "secret": given}
    ):
        shown.add("POST subscription, given secret (echoed)", body["secret"])
    sub_id = generated[0]["id"]
    for body in await created(client, f"{SUBS}/{sub_id}/rotate-secret", admin):
        shown.add("rotate-secret, generated", body["secret"])
    rotated_to = whsec()
    shown.add("rotate-secret, given", rotated_to)
    await created(client, f"{SUBS}/{sub_id}/rotate-secret", admin, {"secret": rotated_to})
    # a delivery signed with those secrets and carrying the header, all the way out
    await created(client, f"{SUBS}/{sub_id}/test", admin)
    [request] = await receiver.wait_for(1, timeout=10)
    await settled(client, admin, request.headers["webhook-id"])
    # a broker URL's password: sealed, and in no attempt's error nor log once Redis refuses it
    broker_password = "broker-" + secrets.token_hex(12)
    shown.add("broker URL password", broker_password)
    broker = {
        "type": "redis",
        "url": f"redis://app:{broker_password}@127.0.0.1:6379/0",
        "options": {"stream": "cf-secrets-" + secrets.token_hex(4)},
        "events": ["incident.created"],
    }
    [broker_sub, _] = await created(client, SUBS, admin, broker)
    [probe, _] = await created(client, f"{SUBS}/{broker_sub['id']}/test", admin)
    await settled(client, admin, probe["id"])

    for body in await created(client, "/v1/notifications/stream-tickets", admin):
        shown.add("stream ticket", body["ticket"])

    inbound = {
        p: f"{p}-signing-{secrets.token_hex(12)}" for p in ("sentry", "pagerduty", "grafana")
    }
    for provider, value in inbound.items():
        shown.add(f"PATCH /v1/tenant inbound secret {provider}", value)
    patched = await client.patch(
        "/v1/tenant", headers=admin, json={"inbound": {"secrets": inbound}}
    )
    assert patched.status_code == 200, patched.text

    credential = "dd-api-key-" + secrets.token_hex(16)
    shown.add("integration config credential", credential)
    await created(
        client, "/v1/integrations", admin, {"provider": "datadog", "config": {"apiKey": credential}}
    )
    token = "trigger-token-" + secrets.token_hex(16)
    shown.add("trigger config credential", token)
    await created(
        client,
        "/v1/triggers",
        admin,
        {"slug": "pager", "provider": "datadog", "action": "page", "config": {"token": token}},
    )

    # the CLI, on the same store
    made = cli.run_cli("tenant", "create", "--name", "from-cli", "--json")
    out = parse_json_output(made.stdout)
    for field in ("apiKey", "ingestKey", "webhookSecret", "adminToken"):
        shown.add(f"causeflow tenant create {field}", out[field])
    minted = cli.run_cli("token", "--tenant", out["tenantId"], "--role", "member")
    shown.add("causeflow token", minted.stdout.strip())

    # dashboard sessions, opened with an API key and with a token
    for label, cred in (("API key", api_key), ("token", out["adminToken"])):
        response = await sign_in(client, cred)
        assert response.status_code == 303, response.text
        session_id = set_cookie_header(response, "cf_session").split(";")[0].split("=", 1)[1]
        shown.add(f"dashboard session id (signed in with an {label})", session_id)
        assert (await client.get("/ui/subscriptions")).status_code == 200
        client.cookies.clear()
    return [made.stderr, minted.stderr]


async def scan_tables(svc: Service, shown: Shown) -> tuple[list[str], list[str]]:
    """Every text value of every table: secrets shown (findings), and sealed values in
    columns not marked sealed (which a key rotation would miss)."""
    findings: list[str] = []
    unmarked: list[str] = []
    box = svc.ctx.keys.box
    in_db = MetaData()
    async with svc.ctx.db.read() as conn:
        await conn.run_sync(in_db.reflect)
        assert set(metadata.tables) <= set(in_db.tables)
        for table in in_db.sorted_tables:
            declared = metadata.tables.get(table.name)
            for row in (await conn.execute(select(table))).all():
                for column, value in row._mapping.items():
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value).decode("utf-8", "replace")
                    if not isinstance(value, str):
                        continue
                    where = f"table {table.name}.{column}"
                    findings += shown.found_in(where, value)
                    sealed = declared is not None and declared.c[column].info.get("sealed")
                    for match in SEALED_VALUE.findall(value):
                        try:
                            box.open(match)
                        except ValueError:
                            continue
                        if not sealed:
                            unmarked.append(where)
    return findings, sorted(set(unmarked))


def sealing_key_hex(settings: Settings) -> str:
    content = keyfile.read(settings.data_dir / "keys.json")
    assert content is not None and content.sealing_key is not None
    return content.sealing_keys[content.sealing_key].hex()


def scan_files(data_dir: Path, shown: Shown, when: str, key_file: bool = True) -> list[str]:
    """The raw bytes of the database, its WAL and (unless told otherwise) the key file."""
    findings: list[str] = []
    names = ["causeflow.db", "causeflow.db-wal"] + (["keys.json"] if key_file else [])
    for name in names:
        path = data_dir / name
        if path.exists():
            findings += shown.found_in(f"file {name} ({when})", path.read_bytes())
    return findings


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


async def test_nothing_shown_once_is_kept_readable(
    tmp_path: Path, database_url: str, receiver: Receiver
) -> None:
    settings = make_settings(tmp_path, database_url, **FAST)
    cli = Deployment(tmp_path, database_url or None)
    shown = Shown()
    own = Shown()  # the service's own keys: in the key file or the environment only
    findings: list[str] = []
    with captured_logs() as logs:
        async with running_service(settings) as svc:
            cli_logs = await scenario(svc, shown, receiver, cli)
            own.add("the JWT secret", svc.ctx.keys.jwt_secret)
            own.add("the sealing key", settings.secret_key or sealing_key_hex(settings))
            table_findings, unmarked = await scan_tables(svc, shown)
            findings += table_findings
            findings += (await scan_tables(svc, own))[0]
            if not database_url:
                findings += scan_files(settings.data_dir, shown, "while serving")
                findings += scan_files(settings.data_dir, own, "while serving", key_file=False)
        if not database_url:
            findings += scan_files(settings.data_dir, shown, "after shutdown")
            findings += scan_files(settings.data_dir, own, "after shutdown", key_file=False)
    for line in logs.lines + cli_logs:
        findings += shown.found_in("log output", line) + own.found_in("log output", line)
    assert len(shown.values) >= 24, shown.values
    assert not unmarked, f"sealed values in columns not marked sealed: {unmarked}"
    assert not findings, "secrets kept readable:\n" + "\n".join(sorted(set(findings)))
