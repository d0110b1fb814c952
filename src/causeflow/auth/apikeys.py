"""API keys: created with scopes and shown once, stored as SHA-256 hashes, looked up by hash.

Lookups are cached per process for a few seconds (every request authenticates); revoking a key
here drops it from this process's cache at once, other processes within the cache lifetime.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlalchemy import and_, select, update

from causeflow import ids
from causeflow.auth.crypto import SecretBox, hash_api_key, new_api_key
from causeflow.auth.principal import SCOPES, Principal
from causeflow.auth.tables import api_keys
from causeflow.cache import TtlCache
from causeflow.db.conn import AnyRow, Conn
from causeflow.db.engine import Database, Tx
from causeflow.errors import Conflict, ValidationFailed
from causeflow.jsonutil import dumps_str, loads


@dataclass(frozen=True)
class KeyRecord:
    id: str
    tenant_id: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: int
    revoked_at: int | None
    webhook_secret_enc: str | None


def _record(row: AnyRow) -> KeyRecord:
    return KeyRecord(
        row.id,
        row.tenant_id,
        row.name,
        row.prefix,
        tuple(loads(row.scopes)),
        row.created_at,
        row.revoked_at,
        row.webhook_secret_enc,
    )


def check_scopes(scopes: list[str]) -> tuple[str, ...]:
    if not scopes:
        raise ValidationFailed.at("scopes", "at least one scope is required")
    for i, scope in enumerate(scopes):
        if scope not in SCOPES:
            raise ValidationFailed.at(f"scopes[{i}]", f"unknown scope {scope!r}")
    return tuple(dict.fromkeys(scopes))


async def create_key(
    tx: Tx,
    *,
    tenant_id: str,
    name: str,
    scopes: list[str],
    now_ms: int,
    box: SecretBox,
    webhook_secret: str | None = None,
    max_keys: int | None = None,
) -> tuple[KeyRecord, str]:
    """Returns the record and the plaintext key (the only time it exists)."""
    checked = check_scopes(scopes)
    if max_keys is not None:
        from sqlalchemy import func

        count = (
            await tx.execute(
                select(func.count())
                .select_from(api_keys)
                .where(api_keys.c.tenant_id == tenant_id, api_keys.c.revoked_at.is_(None))
            )
        ).scalar_one()
        if count >= max_keys:
            raise Conflict(f"this tenant already has {count} API keys", code="limit_reached")
    plaintext = new_api_key()
    key_id = ids.new_id("key", now_ms)
    sealed = box.seal(webhook_secret) if webhook_secret else None
    values = dict(
        id=key_id,
        tenant_id=tenant_id,
        name=name,
        key_hash=hash_api_key(plaintext),
        prefix=plaintext[:12],
        scopes=dumps_str(list(checked)),
        created_at=now_ms,
        webhook_secret_enc=sealed,
    )
    await tx.execute(api_keys.insert().values(**values))
    record = KeyRecord(key_id, tenant_id, name, plaintext[:12], checked, now_ms, None, sealed)
    return record, plaintext


async def list_keys(
    conn: Conn, tenant_id: str, *, after_id: str | None, limit: int
) -> list[KeyRecord]:
    cond = [api_keys.c.tenant_id == tenant_id, api_keys.c.revoked_at.is_(None)]
    if after_id:
        cond.append(api_keys.c.id > after_id)
    stmt = select(api_keys).where(and_(*cond)).order_by(api_keys.c.id).limit(limit)
    return [_record(r) for r in (await conn.execute(stmt)).all()]


async def get_key(conn: Conn, tenant_id: str, key_id: str) -> KeyRecord | None:
    row = (
        await conn.execute(
            select(api_keys).where(
                api_keys.c.id == key_id,
                api_keys.c.tenant_id == tenant_id,
                api_keys.c.revoked_at.is_(None),
            )
        )
    ).first()
    return _record(row) if row else None


async def revoke_key(tx: Tx, tenant_id: str, key_id: str, now_ms: int) -> bool:
    result = await tx.execute(
        update(api_keys)
        .where(
            api_keys.c.id == key_id,
            api_keys.c.tenant_id == tenant_id,
            api_keys.c.revoked_at.is_(None),
        )
        .values(revoked_at=now_ms)
    )
    return bool(result.rowcount)


class KeyCache:
    """hash -> (record or None, fetched at); a short TTL bounds how long a revoked key lives."""

    def __init__(self, db: Database, ttl: float = 2.0, max_entries: int = 10000) -> None:
        self.db = db
        self._cache: TtlCache[str, KeyRecord | None] = TtlCache(ttl, max_entries)

    async def lookup(self, plaintext: str) -> KeyRecord | None:
        digest = hash_api_key(plaintext)

        async def load() -> KeyRecord | None:
            async with self.db.read() as conn:
                row = (
                    await conn.execute(select(api_keys).where(api_keys.c.key_hash == digest))
                ).first()
            return _record(row) if row and row.revoked_at is None else None

        return await self._cache.get(digest, load)

    def forget(self, key_id: str) -> None:
        self._cache.drop_where(lambda _digest, rec: rec is not None and rec.id == key_id)


@functools.lru_cache(maxsize=4096)  # the same (immutable) principal for the same stored key
def principal_for_key(record: KeyRecord) -> Principal:
    return Principal(
        kind="api_key",
        subject=record.id,
        tenant_id=record.tenant_id,
        scopes=frozenset(record.scopes),
        key_id=record.id,
    )
