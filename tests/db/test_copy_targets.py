"""`db/copy.py` against half-made targets: a database holding only `alembic_version` (at head,
or at an old revision) and no tables. Each is refused before anything is written, in one line
that says what to do, never a driver's error with its SQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from causeflow.db.copy import CopyError, copy_store, head_revision
from causeflow.schema import metadata
from tests.db.test_copy import execute, full_store, pg_url, table_names, target_of

__all__ = ["pg_url"]  # the fixture, used below

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("revision", ["head", "0003"])
async def test_a_target_with_only_a_revision_is_refused(
    tmp_path: Path, pg_url: str, revision: str
) -> None:
    source = await full_store(tmp_path)
    target = target_of(source, pg_url)
    stamped = head_revision() if revision == "head" else revision
    await execute(
        target,
        text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"),
        text(f"INSERT INTO alembic_version VALUES ('{stamped}')"),
    )
    with pytest.raises(CopyError) as caught:
        await copy_store(source, target, metadata)
    message = str(caught.value)
    assert "\n" not in message and "SQL" not in message, message
    assert "alembic_version" in message and "re-create" in message, message
    assert await table_names(target) == {"alembic_version"}  # nothing written


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://cf:hunter2@db.example:notaport/causeflow",
        "postgresql://cf:hunter2@[::1/causeflow",
    ],
)
async def test_an_unparsable_target_url_is_one_line_without_its_password(
    tmp_path: Path, url: str
) -> None:
    source = await full_store(tmp_path)
    with pytest.raises(CopyError) as caught:
        await copy_store(source, target_of(source, url), metadata)
    message = str(caught.value)
    assert "hunter2" not in message and "cf:***@" in message, message
    assert "\n" not in message and "ValueError" not in message, message
