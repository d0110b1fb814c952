"""The service's own keys: kept outside the database they protect, private store files, the
move out of the database for older stores, and `causeflow keys rotate`."""

from __future__ import annotations

import base64
import logging
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, select, update

from causeflow.auth import keyfile
from causeflow.auth.crypto import SEALED_VALUE, SecretBox, key_id
from causeflow.auth.keyfile import KeyStoreError
from causeflow.auth.keys import RECORD_PREFIX
from causeflow.auth.rotation import (
    ROTATOR,
    add_sealing_key,
    reseal_all,
    rotate_sealing_key,
    sealed_columns,
)
from causeflow.auth.tables import service_keys
from causeflow.cli import hold_sqlite_lock
from causeflow.db.engine import Database
from causeflow.db.migrate import migrate
from causeflow.schema import metadata
from causeflow.settings import Settings
from tests.support.dashboard import set_cookie_header, sign_in
from tests.support.inproc import Service, Tenant, make_settings, running_service
from tests.support.keys import is_pg
from tests.support.processes import Deployment

SUBS = "/v1/webhook-subscriptions"
Sealed = dict[tuple[str, str, str], list[str]]  # (table, primary key, column) -> plaintexts


def settings_for(tmp_path: Path, database_url: str = "", **overrides: Any) -> Settings:
    """On PostgreSQL the keys live in a key file here (not the test environment's keys), so
    the tests see the same mechanics on both databases."""
    if is_pg(database_url):
        overrides = {
            "key_file": str(tmp_path / "secrets" / "keys.json"),
            "jwt_secret": "",
            "secret_key": "",
            **overrides,
        }
    return make_settings(tmp_path, database_url, **overrides)


def key_path(settings: Settings) -> Path:
    return Path(settings.key_file) if settings.key_file else settings.data_dir / "keys.json"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


async def populate(svc: Service) -> tuple[Tenant, str]:
    """One of every sealed thing: a subscription with headers and a rotated secret, inbound
    provider secrets, an ingest key's signing secret, integration and trigger configs and a
    dashboard session. Returns the tenant and the session cookie."""
    tenant = await svc.tenant("acme")
    client, h = svc.client, tenant.key_headers
    sub = await client.post(
        SUBS,
        headers=h,
        json={
            "url": "http://127.0.0.1:9/hook",
            "events": ["incident.created"],
            "headers": {"Authorization": "Bearer receiver-credential"},
        },
    )
    assert sub.status_code == 201, sub.text
    rotated = await client.post(f"{SUBS}/{sub.json()['id']}/rotate-secret", headers=h)
    assert rotated.status_code == 200, rotated.text
    patched = await client.patch(
        "/v1/tenant",
        headers=h,
        json={"inbound": {"secrets": {"sentry": "sentry-client-secret", "grafana": "gf-token"}}},
    )
    assert patched.status_code == 200, patched.text
    integration = await client.post(
        "/v1/integrations", headers=h, json={"provider": "datadog", "config": {"apiKey": "dd-1"}}
    )
    assert integration.status_code == 201, integration.text
    trigger = await client.post(
        "/v1/triggers",
        headers=h,
        json={"slug": "pager", "provider": "datadog", "action": "page", "config": {"token": "t"}},
    )
    assert trigger.status_code == 201, trigger.text
    signed_in = await sign_in(client, tenant.api_key)
    assert signed_in.status_code == 303, signed_in.text
    cookie = set_cookie_header(signed_in, "cf_session").split(";")[0].split("=", 1)[1]
    client.cookies.clear()
    return tenant, cookie


async def sealed_values(settings: Settings, box: SecretBox | None = None) -> tuple[Sealed, set]:
    """Every sealed value of every sealed column, opened with `box` (when given), and the ids
    of the keys they are sealed under (`v1` for values without one)."""
    db = Database(settings)
    out: Sealed = {}
    kids: set[str] = set()
    try:
        async with db.read() as conn:
            for table, column in sealed_columns(metadata):
                keys = list(table.primary_key.columns)
                for row in (await conn.execute(select(*keys, column))).all():
                    found = SEALED_VALUE.findall(row[-1] or "")
                    for value in found:
                        kids.add(value.split(".")[1] if value.startswith("v2.") else "v1")
                    pk = "/".join(str(v) for v in row[:-1])
                    out[(table.name, pk, column.name)] = (
                        [box.open(v) for v in found] if box is not None else found
                    )
    finally:
        await db.dispose()
    return out, kids


def read_key_file(settings: Settings) -> dict[str, Any]:
    data = orjson.loads(key_path(settings).read_bytes())
    assert isinstance(data, dict)
    return data


def file_box(settings: Settings) -> SecretBox:
    content = keyfile.read(key_path(settings))
    assert content is not None and content.sealing_key is not None
    return SecretBox(content.sealing_keys[content.sealing_key], list(content.sealing_keys.values()))


async def stored_key_rows(settings: Settings) -> list[tuple[str, str]]:
    db = Database(settings)
    try:
        async with db.read() as conn:
            rows = (await conn.execute(select(service_keys.c.name, service_keys.c.value))).all()
    finally:
        await db.dispose()
    return [(name, value) for name, value in rows]


# --- files and where the keys live ------------------------------------------------------------


@pytest.mark.integration
async def test_store_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with umask(0):
        async with running_service(settings) as svc:
            await populate(svc)
            data = settings.data_dir
            assert mode(data) == 0o700
            for name in ("causeflow.db", "causeflow.db-wal", "causeflow.db-shm", "keys.json"):
                assert mode(data / name) == 0o600, name
            lock = hold_sqlite_lock(settings)
            lock.close()
            assert mode(data / "serve.lock") == 0o600


@pytest.mark.integration
async def test_loose_modes_of_an_existing_store_are_tightened_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path)
    async with running_service(settings):
        pass
    data = settings.data_dir
    data.chmod(0o755)
    for name in ("causeflow.db", "keys.json", "serve.lock"):
        (data / name).touch()
        (data / name).chmod(0o644)
    caplog.set_level(logging.INFO, logger="causeflow")
    async with running_service(settings) as svc:
        await svc.tenant("acme")
        assert mode(data) == 0o700
        for name in ("causeflow.db", "causeflow.db-wal", "keys.json", "serve.lock"):
            assert mode(data / name) == 0o600, name
    said = [r.getMessage() for r in caplog.records if r.name == "causeflow.files"]
    assert any(f"{data} had mode 0755; set to 0700" in line for line in said), said
    assert any(f"{data / 'causeflow.db'} had mode 0644; set to 0600" in line for line in said)
    assert any("keys.json had mode 0644" in line for line in said), said


@pytest.mark.integration
async def test_a_copy_of_the_database_alone_mints_no_token_and_opens_no_secret(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    async with running_service(settings) as svc:
        await populate(svc)
        jwt_secret = svc.ctx.keys.jwt_secret
    before, _ = await sealed_values(settings, file_box(settings))
    content = keyfile.read(key_path(settings))
    assert content is not None and content.jwt_secret == jwt_secret
    [raw] = content.sealing_keys.values()
    store = b"".join(
        p.read_bytes() for p in settings.data_dir.iterdir() if p.name.startswith("causeflow.db")
    )
    for needle in (jwt_secret.encode(), raw, raw.hex().encode(), base64.b64encode(raw)):
        assert needle not in store
    # the database names the key its values are sealed under, and holds nothing else of it
    assert await stored_key_rows(settings) == [(RECORD_PREFIX + key_id(raw), key_id(raw))]

    # the database copied elsewhere, without its key file: refused, with the reason
    copy = make_settings(tmp_path / "copy")
    copy.data_dir.mkdir(parents=True)
    shutil.copy(settings.sqlite_path, copy.sqlite_path)
    with pytest.raises(KeyStoreError, match=f"sealed under key id {key_id(raw)}"):
        async with running_service(copy):
            pass
    assert not key_path(copy).exists()  # nothing was generated in its place
    # with the key file beside it, everything opens again
    shutil.copy(key_path(settings), key_path(copy))
    async with running_service(copy) as svc:
        assert svc.ctx.keys.jwt_secret == jwt_secret
    assert (await sealed_values(copy, file_box(copy)))[0] == before


def v1_seal(raw: bytes, plaintext: str) -> str:
    """A value sealed the way earlier versions did (no key id)."""
    nonce = os.urandom(12)
    return (
        "v1."
        + base64.b64encode(
            nonce + AESGCM(raw).encrypt(nonce, plaintext.encode(), b"causeflow")
        ).decode()
    )


async def make_legacy(settings: Settings) -> tuple[str, bytes]:
    """Turn a store into what an earlier version left: both keys in `service_keys`, values
    sealed without key ids, no key file. Returns the JWT secret and the sealing key."""
    content = keyfile.read(key_path(settings))
    assert content is not None and content.jwt_secret and content.sealing_key
    raw = content.sealing_keys[content.sealing_key]
    box = SecretBox(raw)
    db = Database(settings)
    try:
        async with db.transaction() as tx:
            for table, column in sealed_columns(metadata):
                keys = list(table.primary_key.columns)
                for row in await tx.execute(select(*keys, column).where(column.is_not(None))):
                    old = SEALED_VALUE.sub(lambda m: v1_seal(raw, box.open(m.group(0))), row[-1])
                    match = [k == row[i] for i, k in enumerate(keys)]
                    await tx.execute(update(table).where(*match).values({column.name: old}))
            await tx.execute(delete(service_keys))
            for name, value in (("jwt_secret", content.jwt_secret), ("secret_box_key", raw.hex())):
                await tx.execute(service_keys.insert().values(name=name, value=value, created_at=1))
    finally:
        await db.dispose()
    key_path(settings).unlink()
    return content.jwt_secret, raw


@pytest.mark.integration
async def test_an_older_store_has_its_keys_moved_out_on_first_start(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(tmp_path, database_url)
    async with running_service(settings) as svc:
        tenant, cookie = await populate(svc)
    plain, _ = await sealed_values(settings, file_box(settings))
    jwt_secret, raw = await make_legacy(settings)
    assert (await sealed_values(settings))[1] == {"v1"}

    caplog.set_level(logging.INFO, logger="causeflow")
    async with running_service(settings) as svc:
        # tokens signed before and every sealed value still work
        assert (await svc.client.get("/v1/tenant", headers=tenant.admin_headers)).status_code == 200
        svc.client.cookies.set("cf_session", cookie)
        page = await svc.client.get("/ui/subscriptions")
        assert page.status_code == 200
    assert any(
        "moved the service's keys out of the database" in r.getMessage() for r in caplog.records
    )
    moved = read_key_file(settings)
    assert moved["jwtSecret"] == jwt_secret
    assert moved["sealingKeys"] == {key_id(raw): raw.hex()}
    assert mode(key_path(settings)) == 0o600
    assert await stored_key_rows(settings) == [(RECORD_PREFIX + key_id(raw), key_id(raw))]
    assert (await sealed_values(settings, SecretBox(raw)))[0] == plain
    if not is_pg(database_url):  # the deleted keys' bytes are gone from the file too
        store = b"".join(
            p.read_bytes() for p in settings.data_dir.iterdir() if p.name.startswith("causeflow.db")
        )
        assert raw.hex().encode() not in store and jwt_secret.encode() not in store


@pytest.mark.process
def test_postgresql_refuses_to_start_without_keys_from_outside_the_database(
    tmp_path: Path,
) -> None:
    from tests.support.pg import fresh_database, require_pg

    require_pg()
    with fresh_database() as url, Deployment(tmp_path, url) as dep:
        no_keys = {"CAUSEFLOW_JWT_SECRET": None, "CAUSEFLOW_SECRET_KEY": None}
        refused = dep.run_cli("tenant", "create", "--name", "x", check=False, env=no_keys)
        assert refused.returncode == 2
        [line] = refused.stderr.strip().splitlines()
        assert "CAUSEFLOW_KEY_FILE" in line and "CAUSEFLOW_SECRET_KEY" in line
        key_file = tmp_path / "etc" / "keys.json"
        made = dep.run_cli(
            "tenant", "create", "--name", "x", "--json", "--create",
            env={**no_keys, "CAUSEFLOW_KEY_FILE": str(key_file)},
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert mode(key_file) == 0o600
        content = keyfile.read(key_file)
        assert content is not None and content.jwt_secret and content.sealing_key


# --- rotation -------------------------------------------------------------------------------


@pytest.mark.process
async def test_rotate_seals_every_sealed_value_again_under_a_new_key(
    tmp_path: Path, database_url: str
) -> None:
    settings = settings_for(tmp_path, database_url)
    dep = Deployment(tmp_path, database_url or None)
    args = ["keys", "rotate", "--data-dir", str(settings.data_dir)]
    env: dict[str, str | None] = {}
    if database_url:
        args += ["--database-url", database_url]
        env = {"CAUSEFLOW_JWT_SECRET": None, "CAUSEFLOW_SECRET_KEY": None}
        env["CAUSEFLOW_KEY_FILE"] = settings.key_file
    async with running_service(settings) as svc:
        tenant, cookie = await populate(svc)
        old_kid = svc.ctx.keys.box.key_id
        if database_url:  # a running service on the database: refused
            refused = dep.run_cli(*args, check=False, env=env)
            assert refused.returncode == 2 and "stop every" in refused.stderr, refused.stderr
    before, kids = await sealed_values(settings, file_box(settings))
    assert kids == {old_kid} and len(before) >= 8
    if not database_url:  # `serve` holds the data directory: refused
        lock = hold_sqlite_lock(settings)
        try:
            refused = dep.run_cli(*args, check=False, env=env)
        finally:
            lock.close()
        assert refused.returncode == 2 and "stop it before" in refused.stderr, refused.stderr

    done = dep.run_cli(*args, env=env)
    content = read_key_file(settings)
    [new_kid] = content["sealingKeys"]
    assert new_kid != old_kid and content["sealingKey"] == new_kid
    assert f"new key id {new_kid}" in done.stderr
    after, kids = await sealed_values(settings, file_box(settings))
    assert kids == {new_kid} and after == before
    assert await stored_key_rows(settings) == [(RECORD_PREFIX + new_kid, new_kid)]
    async with running_service(settings) as svc:
        sub = (await svc.client.get(SUBS, headers=tenant.key_headers)).json()["items"][0]
        assert sub["headers"] == {"Authorization": "<redacted>"}
        svc.client.cookies.set("cf_session", cookie)
        page = await svc.client.get("/ui/subscriptions")
        assert page.status_code == 200 and "acme" in page.text


@pytest.mark.integration
async def test_a_rotation_stopped_after_any_step_loses_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running_service(settings) as svc:
        await populate(svc)
        keys = svc.ctx.keys
    before, _ = await sealed_values(settings, file_box(settings))
    old_kid = keys.box.key_id

    async def everything_opens() -> SecretBox:
        async with running_service(settings) as svc:
            box = svc.ctx.keys.box
        assert (await sealed_values(settings, box))[0] == before
        return box

    # 1. the new key is in the key file; nothing is sealed under it yet
    new_box = await add_sealing_key(keys)
    assert set(read_key_file(settings)["sealingKeys"]) == {old_kid, new_box.key_id}
    assert (await everything_opens()).key_id == new_box.key_id
    # 2. everything is sealed again; the old key is still in the file
    db = Database(settings)
    try:
        await reseal_all(db, new_box, 1, metadata)
    finally:
        await db.dispose()
    assert (await sealed_values(settings))[1] == {new_box.key_id}
    await everything_opens()
    # running the command again finishes the job, under yet another key
    db = Database(settings, application_name=ROTATOR)
    try:
        done = await rotate_sealing_key(db, 2, metadata)
    finally:
        await db.dispose()
    assert list(read_key_file(settings)["sealingKeys"]) == [done.key_id]
    assert (await everything_opens()).key_ids == [done.key_id]


@pytest.mark.integration
async def test_sealing_keys_from_the_environment_rotate_as_new_comma_old(tmp_path: Path) -> None:
    old, new = "11" * 32, "22" * 32
    settings = make_settings(tmp_path, secret_key=old)
    async with running_service(settings) as svc:
        await populate(svc)
    assert "sealingKeys" not in read_key_file(settings)  # the environment holds it
    before, kids = await sealed_values(settings, SecretBox(bytes.fromhex(old)))
    assert kids == {key_id(bytes.fromhex(old))}

    both = make_settings(tmp_path, secret_key=f"{new},{old}")
    db = Database(both, application_name=ROTATOR)
    try:
        done = await rotate_sealing_key(db, 1, metadata)
    finally:
        await db.dispose()
    assert done.key_id == key_id(bytes.fromhex(new))
    assert (await sealed_values(both, SecretBox(bytes.fromhex(new))))[0] == before
    async with running_service(make_settings(tmp_path, secret_key=new)):
        pass
    with pytest.raises(KeyStoreError, match=f"sealed under key id {done.key_id}"):
        async with running_service(make_settings(tmp_path, secret_key=old)):
            pass


@pytest.mark.process
async def test_rotate_jwt_replaces_the_signing_secret(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running_service(settings) as svc:
        tenant = await svc.tenant("acme")
        old_secret = svc.ctx.keys.jwt_secret
    dep = Deployment(tmp_path)
    refused = dep.run_cli("keys", "rotate", "--jwt", check=False, env={"CAUSEFLOW_JWT_SECRET": "x"})
    assert refused.returncode == 2 and "CAUSEFLOW_JWT_SECRET" in refused.stderr
    done = dep.run_cli("keys", "rotate", "--jwt")
    assert "no longer accepted" in done.stderr
    assert read_key_file(settings)["jwtSecret"] != old_secret
    async with running_service(settings) as svc:
        client = svc.client
        assert (await client.get("/v1/tenant", headers=tenant.admin_headers)).status_code == 401
        assert (await client.get("/v1/tenant", headers=tenant.key_headers)).status_code == 200
        assert (await client.get("/v1/tenant", headers=svc.token(tenant))).status_code == 200


@pytest.mark.integration
async def test_postgresql_without_a_key_file_moves_only_the_key_it_already_has(
    tmp_path: Path,
) -> None:
    from tests.support.pg import fresh_database_async, require_pg

    require_pg()
    async with fresh_database_async() as url:
        settings = make_settings(tmp_path, url)  # both keys from the environment
        await migrate(settings)
        db = Database(settings)
        try:
            async with db.transaction() as tx:
                await tx.execute(
                    service_keys.insert().values(
                        name="secret_box_key", value=settings.secret_key, created_at=1
                    )
                )
        finally:
            await db.dispose()
        async with running_service(settings):
            pass
        kid = key_id(bytes.fromhex(settings.secret_key))
        assert await stored_key_rows(settings) == [(RECORD_PREFIX + kid, kid)]

        db = Database(settings)
        try:
            async with db.transaction() as tx:
                await tx.execute(
                    service_keys.insert().values(
                        name="secret_box_key", value="77" * 32, created_at=1
                    )
                )
        finally:
            await db.dispose()
        with pytest.raises(KeyStoreError, match="set CAUSEFLOW_KEY_FILE"):
            async with running_service(settings):
                pass
