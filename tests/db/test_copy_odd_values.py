"""`db/copy.py` with values a real SQLite store may hold: unicode beyond the BMP, huge JSON,
epoch 0, booleans, and a NUL character in text (SQLite keeps it, PostgreSQL text cannot). What
PostgreSQL can hold is copied and verifies equal; a NUL is refused before anything is written,
in one line naming where it is, never a driver's dump of the rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from causeflow.db.copy import CopyError, copy_store, verify_copy
from causeflow.schema import metadata
from tests.db.test_copy import execute, fetch, full_store, pg_url, table_names, target_of

__all__ = ["pg_url"]  # the fixture, used below

pytestmark = pytest.mark.integration


async def test_odd_values_are_copied_and_verify_equal(tmp_path: Path, pg_url: str) -> None:
    source = await full_store(tmp_path)
    tenants, events = metadata.tables["tenants"], metadata.tables["events"]
    huge = '{"data":{"blob":"' + "x" * 2_000_000 + '","emoji":"\U0001f525"}}'
    await execute(
        source,
        update(tenants)
        .where(tenants.c.id == "tenants.id.1")
        .values(name="Ünïcødé 🔥 \u202e\ufeff 名前", created_at=0, updated_at=0),
        update(events).where(events.c.id == "events.id.1").values(envelope=huge, created_at=0),
    )
    target = target_of(source, pg_url)
    await copy_store(source, target, metadata)
    assert all(c.ok for c in await verify_copy(source, target, metadata))
    rows = await fetch(target, "SELECT name, created_at FROM tenants WHERE id = 'tenants.id.1'")
    assert [tuple(r) for r in rows] == [("Ünïcødé 🔥 \u202e\ufeff 名前", 0)]


async def test_a_nul_in_text_is_refused_in_one_line_naming_it(tmp_path: Path, pg_url: str) -> None:
    source = await full_store(tmp_path)
    api_keys = metadata.tables["api_keys"]
    secret_hash = "api_keys.key_hash.2"
    await execute(
        source,
        update(api_keys).where(api_keys.c.id == "api_keys.id.2").values(name="bad\x00name"),
    )
    target = target_of(source, pg_url)
    with pytest.raises(CopyError) as caught:
        await copy_store(source, target, metadata)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 500, message
    assert "api_keys" in message and "api_keys.id.2" in message and "name" in message
    assert "NUL" in message
    assert secret_hash not in message and "INSERT" not in message  # no rows, no SQL
    # nothing was written: the target holds the schema and no row
    assert await table_names(target) >= {"tenants"}
    assert await fetch(target, "SELECT count(*) FROM tenants") == [(0,)]
