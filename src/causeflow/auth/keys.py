"""The service's own keys: the JWT signing secret and the sealing keys of the secret box.

They are never kept in the database they protect, so a copy of the database alone (a backup,
a dump) mints no token and opens no sealed secret. Each comes from the environment
(`CAUSEFLOW_JWT_SECRET`, `CAUSEFLOW_SECRET_KEY`) or else from the key file
(`CAUSEFLOW_KEY_FILE`; on SQLite by default `keys.json` in the data directory), where
whatever the environment does not give is generated on first start. PostgreSQL has no data
directory: there a process refuses to start unless the keys come from the environment or a
configured key file.

The database keeps only the ids of the sealing keys its values are sealed under
(`service_keys` rows `sealing_key_id:<id>`; an id reveals nothing of its key). A start whose
keys lack one of them is refused, rather than run with secrets it cannot open (a database
restored without its key file, hosts with different key files).

Stores written by earlier versions kept both keys in `service_keys`: the first start moves
them into the key file (written and synced first) and then deletes them from the table, so a
crash in between loses nothing and the next start finishes the move.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select

from causeflow.auth import keyfile
from causeflow.auth.crypto import (
    SecretBox,
    key_bytes,
    key_id,
    new_sealing_key,
    strict_key_bytes,
)
from causeflow.auth.keyfile import KeyFile, KeyStoreError
from causeflow.auth.tables import service_keys
from causeflow.db.engine import Database
from causeflow.db.erase import delete_erased
from causeflow.db.files import key_file_path
from causeflow.settings import Settings

log = logging.getLogger("causeflow.keys")

LEGACY_NAMES = ("jwt_secret", "secret_box_key")
RECORD_PREFIX = "sealing_key_id:"

__all__ = [
    "KeyStoreError",
    "ServiceKeys",
    "check_key_sources",
    "load_service_keys",
    "restored_keys_problem",
]


@dataclass(frozen=True)
class ServiceKeys:
    jwt_secret: str
    box: SecretBox
    key_file: Path | None = None
    jwt_from_env: bool = False
    sealing_from_env: bool = False


def new_jwt_secret() -> str:
    return secrets.token_urlsafe(48)


def env_sealing_keys(text: str) -> list[bytes]:
    """`CAUSEFLOW_SECRET_KEY`: one key, or during a rotation several separated by commas (each
    64 hex characters or base64 of 32 bytes; the first seals). Any other text is one key."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 1:
        raws = [strict_key_bytes(p) for p in parts]
        if all(raws):
            return [r for r in raws if r is not None]
    return [key_bytes(text)]


def check_key_sources(settings: Settings) -> None:
    """Refuse a configuration that would have to keep the keys in the database."""
    if key_file_path(settings) is not None:
        return
    missing = [
        name
        for name, value in (
            ("CAUSEFLOW_JWT_SECRET", settings.jwt_secret),
            ("CAUSEFLOW_SECRET_KEY", settings.secret_key),
        )
        if not value
    ]
    if missing:
        raise KeyStoreError(
            "on PostgreSQL the service's keys must come from outside the database: set "
            "CAUSEFLOW_KEY_FILE to a key file path (generated on first start; give every "
            "process the same file) or set CAUSEFLOW_JWT_SECRET and CAUSEFLOW_SECRET_KEY "
            f"(missing: {', '.join(missing)})"
        )


async def _stored(db: Database) -> tuple[dict[str, str], set[str]]:
    """Keys an earlier version kept in the database, and the recorded sealing key ids."""
    async with db.read() as conn:
        rows = (await conn.execute(select(service_keys.c.name, service_keys.c.value))).all()
    legacy = {name: value for name, value in rows if name in LEGACY_NAMES}
    recorded = {value for name, value in rows if name.startswith(RECORD_PREFIX)}
    return legacy, recorded


def _box(current: bytes, *others: bytes) -> SecretBox:
    return SecretBox(current, [raw for raw in others if raw != current])


def box_of(settings: Settings, content: KeyFile | None) -> SecretBox:
    """The secret box of the environment's keys (first) and the key file's."""
    env_keys = env_sealing_keys(settings.secret_key) if settings.secret_key else []
    file_keys = dict(content.sealing_keys) if content else {}
    if env_keys:
        return _box(env_keys[0], *env_keys[1:], *file_keys.values())
    if content is None or content.sealing_key is None:
        raise KeyStoreError("no sealing key: set CAUSEFLOW_SECRET_KEY or use a key file")
    current = file_keys.pop(content.sealing_key)
    return _box(current, *file_keys.values())


def check_recorded(box: SecretBox, recorded: set[str], source: str) -> None:
    missing = sorted(recorded - set(box.key_ids))
    if missing:
        raise KeyStoreError(
            f"this database holds values sealed under key id {', '.join(missing)}, which "
            f"{source} does not hold: restore the key file that belongs with this database "
            "(or add that key to CAUSEFLOW_SECRET_KEY)"
        )


def _source(settings: Settings, path: Path | None) -> str:
    parts = ["CAUSEFLOW_SECRET_KEY"] if settings.secret_key else []
    if path is not None:
        parts.append(f"the key file {path}")
    return " and ".join(parts) or "the configuration"


async def load_service_keys(db: Database, now_ms: int) -> ServiceKeys:
    settings = db.settings
    check_key_sources(settings)
    path = key_file_path(settings)
    legacy, recorded = await _stored(db)
    env_jwt = settings.jwt_secret or None
    if path is None:
        # PostgreSQL with both keys in the environment: nothing to keep anywhere.
        box = box_of(settings, None)
        legacy_box_key = legacy.get("secret_box_key")
        if legacy_box_key and key_id(key_bytes(legacy_box_key)) not in box.key_ids:
            raise KeyStoreError(
                "the database still holds a sealing key of an earlier version, different from "
                "CAUSEFLOW_SECRET_KEY: set CAUSEFLOW_KEY_FILE so it can be moved out of the "
                "database into that file"
            )
        check_recorded(box, recorded, _source(settings, None))
        jwt_secret = str(env_jwt)
    else:
        with keyfile.locked(path):
            stored = keyfile.read(path)
            content = _merged(
                stored, legacy, need_jwt=env_jwt is None, need_box=not settings.secret_key
            )
            box = box_of(settings, content)
            check_recorded(box, recorded, _source(settings, path))
            holds = content.jwt_secret is not None or content.sealing_key is not None
            changed = content.to_json() != (stored.to_json() if stored else KeyFile().to_json())
            if changed and holds:
                keyfile.write(path, content)
                if stored is None:
                    log.info("keys kept in %s: back it up apart from the database", path)
        jwt_secret = env_jwt or str(content.jwt_secret)
    if legacy:
        await _drop_legacy(db)
        log.warning(
            "moved the service's keys out of the database%s; copies of the database made "
            "before now still hold them: rotate both keys (`causeflow keys rotate`, then "
            "`causeflow keys rotate --jwt`) to make those copies useless",
            f" into {path}" if path is not None else "",
        )
    if box.key_id not in recorded:
        await record_key_ids(db, [box.key_id], now_ms)
    return ServiceKeys(
        jwt_secret=jwt_secret,
        box=box,
        key_file=path,
        jwt_from_env=env_jwt is not None,
        sealing_from_env=bool(settings.secret_key),
    )


def _merged(
    stored: KeyFile | None, legacy: dict[str, str], *, need_jwt: bool, need_box: bool
) -> KeyFile:
    content = (
        KeyFile(stored.jwt_secret, stored.sealing_key, dict(stored.sealing_keys))
        if stored
        else KeyFile()
    )
    if "jwt_secret" in legacy and content.jwt_secret is None:
        content.jwt_secret = legacy["jwt_secret"]
    if "secret_box_key" in legacy:
        content.add_sealing_key(key_bytes(legacy["secret_box_key"]), current=False)
    if need_jwt and content.jwt_secret is None:
        content.jwt_secret = new_jwt_secret()
    if need_box and content.sealing_key is None:
        content.add_sealing_key(new_sealing_key(), current=True)
    return content


async def restored_keys_problem(db: Database) -> str | None:
    """After a restore: why the service would refuse to start on this store with the keys it
    is configured with (None when they open it)."""
    settings = db.settings
    legacy, recorded = await _stored(db)
    if legacy or not recorded:  # an older store still holding its keys, or none sealed yet
        return None
    path = key_file_path(settings)
    try:
        content = keyfile.read(path) if path is not None else None
        if content is None and not settings.secret_key:
            return (
                f"the store holds values sealed under key id {', '.join(sorted(recorded))} and "
                f"there is no key file at {path}: copy the key file kept with this backup there "
                "before starting the service (it refuses to start without it)"
            )
        check_recorded(box_of(settings, content), recorded, _source(settings, path))
    except KeyStoreError as exc:
        return str(exc)
    return None


async def record_key_ids(db: Database, kids: list[str], now_ms: int) -> None:
    async with db.transaction() as tx:
        for kid in kids:
            await tx.execute(
                db.dialect.insert_ignore(service_keys, ["name"]).values(
                    name=RECORD_PREFIX + kid, value=kid, created_at=now_ms
                )
            )


async def _drop_legacy(db: Database) -> None:
    """Delete the keys an earlier version stored; on SQLite their bytes are overwritten and the
    WAL emptied, so the file itself no longer holds them."""
    await delete_erased(db, delete(service_keys).where(service_keys.c.name.in_(LEGACY_NAMES)))
