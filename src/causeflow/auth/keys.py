"""The service's own keys: the JWT secret and the secret-box key.

Generated on first start and kept with the data (`service_keys`), unless the settings name them.
Concurrent first starts agree: each inserts-if-absent, then everyone reads the stored value.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select

from causeflow.auth.crypto import SecretBox, generate_key_text
from causeflow.auth.tables import service_keys
from causeflow.db.engine import Database


@dataclass(frozen=True)
class ServiceKeys:
    jwt_secret: str
    box: SecretBox


async def _get_or_create(db: Database, name: str, make: str, now_ms: int) -> str:
    async with db.transaction() as tx:
        await tx.execute(
            db.dialect.insert_ignore(service_keys, ["name"]).values(
                name=name, value=make, created_at=now_ms
            )
        )
        return str(
            (
                await tx.execute(select(service_keys.c.value).where(service_keys.c.name == name))
            ).scalar_one()
        )


async def load_service_keys(db: Database, now_ms: int) -> ServiceKeys:
    settings = db.settings
    jwt_secret = settings.jwt_secret or await _get_or_create(
        db, "jwt_secret", secrets.token_urlsafe(48), now_ms
    )
    box_key = settings.secret_key or await _get_or_create(
        db, "secret_box_key", generate_key_text(), now_ms
    )
    return ServiceKeys(jwt_secret=jwt_secret, box=SecretBox.from_text(box_key))
