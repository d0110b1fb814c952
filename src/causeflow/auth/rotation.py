"""`causeflow keys rotate`: a new sealing key (every sealed value sealed again) or a new JWT
signing secret.

Run with the service stopped: a running process keeps the keys it started with, so it would
go on sealing under the old key. On SQLite the command holds the serving lock for its
duration; on PostgreSQL it refuses while other service processes are connected.

The sealing key is replaced in three steps, each durable before the next, so a crash at any
moment loses nothing:

1. the new key is added to the key file as the key to seal under, the old ones kept;
2. one transaction seals every value of every sealed column again under the new key
   (opening each under whichever held key sealed it) and records the new key id;
3. the key file is rewritten holding the new key only.

After a crash in 1 or 2 every value still opens (both keys are held); running the command
again finishes the job. With `CAUSEFLOW_SECRET_KEY` the environment owns the keys: the
command only performs step 2 under its first key, and the operator drops the old ones after.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, MetaData, Table, delete, select, update

from causeflow.auth import keyfile
from causeflow.auth.crypto import SecretBox, new_sealing_key
from causeflow.auth.keyfile import KeyStoreError
from causeflow.auth.keys import (
    RECORD_PREFIX,
    ServiceKeys,
    load_service_keys,
    new_jwt_secret,
)
from causeflow.auth.tables import service_keys
from causeflow.db.engine import APPLICATION_NAME, Database

ROTATOR = "causeflow-keys"  # the rotating process's application_name on PostgreSQL


@dataclass
class Resealed:
    key_id: str
    values: Counter[str] = field(default_factory=Counter)  # "table.column" -> values sealed again
    unreadable: Counter[str] = field(default_factory=Counter)  # opened by no held key


def sealed_columns(schema: MetaData) -> list[tuple[Table, Column[Any]]]:
    """Every column marked sealed, in every table of `schema` (the composition root's complete
    metadata, `causeflow.schema.metadata`: a partial one would leave values unrotated)."""
    return [
        (table, column)
        for table in schema.sorted_tables
        for column in table.columns
        if column.info.get("sealed")
    ]


async def reseal_all(db: Database, box: SecretBox, now_ms: int, schema: MetaData) -> Resealed:
    """Seal every sealed value again under `box`'s current key and record that key as the only
    one in use, in one transaction."""
    out = Resealed(box.key_id)
    async with db.transaction() as tx:
        for table, column in sealed_columns(schema):
            where = f"{table.name}.{column.name}"
            keys = list(table.primary_key.columns)
            rows = (await tx.execute(select(*keys, column).where(column.is_not(None)))).all()

            def unreadable(_value: str, where: str = where) -> None:
                out.unreadable[where] += 1

            for row in rows:
                old = row[-1]
                new = box.reseal_text(old, unreadable)
                if new != old:
                    match = [key == row[i] for i, key in enumerate(keys)]
                    await tx.execute(update(table).where(*match).values({column.name: new}))
                    out.values[where] += 1
        await tx.execute(delete(service_keys).where(service_keys.c.name.startswith(RECORD_PREFIX)))
        await tx.execute(
            service_keys.insert().values(
                name=RECORD_PREFIX + box.key_id, value=box.key_id, created_at=now_ms
            )
        )
    return out


async def ensure_alone(db: Database, wait_seconds: float = 2.0) -> None:
    """On PostgreSQL: refuse while service processes are connected to the database (they would
    keep sealing under the old key). Connections just closed get a moment to go."""
    if not db.dialect.multi_process:
        return  # SQLite: the caller holds the serving lock
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        async with db.read() as conn:
            others = await db.dialect.other_connections(conn, APPLICATION_NAME)
        if not others:
            return
        if asyncio.get_running_loop().time() >= deadline:
            raise KeyStoreError(
                f"{others} connection(s) of running causeflow processes are open on this "
                "database: stop every `causeflow serve` and `causeflow worker` first (they keep "
                "the keys they started with)"
            )
        await asyncio.sleep(0.1)


def _key_file(keys: ServiceKeys) -> Any:
    if keys.key_file is None:  # pragma: no cover - check_key_sources prevents it
        raise KeyStoreError("no key file is configured")
    return keys.key_file


async def add_sealing_key(keys: ServiceKeys) -> SecretBox:
    """Step 1: the key file gains a new key to seal under and keeps the others."""
    path = _key_file(keys)
    with keyfile.locked(path):
        content = keyfile.read(path) or keyfile.KeyFile()
        content.add_sealing_key(new_sealing_key(), current=True)
        keyfile.write(path, content)
    return SecretBox(
        content.sealing_keys[str(content.sealing_key)],
        [raw for kid, raw in content.sealing_keys.items() if kid != content.sealing_key],
    )


def retire_old_sealing_keys(keys: ServiceKeys, current: str) -> None:
    """Step 3: the key file keeps only the key everything is now sealed under."""
    path = _key_file(keys)
    with keyfile.locked(path):
        content = keyfile.read(path)
        if content is None or current not in content.sealing_keys:
            raise KeyStoreError(f"the key file {path} changed during the rotation")
        content.sealing_keys = {current: content.sealing_keys[current]}
        content.sealing_key = current
        keyfile.write(path, content)


async def rotate_sealing_key(db: Database, now_ms: int, schema: MetaData) -> Resealed:
    keys = await load_service_keys(db, now_ms)
    await ensure_alone(db)
    if keys.sealing_from_env:
        return await reseal_all(db, keys.box, now_ms, schema)
    box = await add_sealing_key(keys)
    result = await reseal_all(db, box, now_ms, schema)
    retire_old_sealing_keys(keys, box.key_id)
    return result


async def rotate_jwt_secret(db: Database, now_ms: int) -> None:
    keys = await load_service_keys(db, now_ms)
    await ensure_alone(db)
    if keys.jwt_from_env:
        raise KeyStoreError(
            "the JWT secret comes from CAUSEFLOW_JWT_SECRET: set a new value there and restart "
            "every process (tokens signed with the old one stop being accepted)"
        )
    path = _key_file(keys)
    with keyfile.locked(path):
        content = keyfile.read(path) or keyfile.KeyFile()
        content.jwt_secret = new_jwt_secret()
        keyfile.write(path, content)
