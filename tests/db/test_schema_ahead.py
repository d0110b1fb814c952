"""A process older than the schema refuses to start, with one line saying why, and changes
nothing: after an upgrade's migration, only the new version may (re)start."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from causeflow.db.migrate import SchemaError, migrate
from causeflow.settings import Settings
from tests.support.processes import service_env

pytestmark = pytest.mark.process


async def test_a_schema_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    await migrate(settings)
    with sqlite3.connect(settings.sqlite_path) as db:
        db.execute("UPDATE alembic_version SET version_num = '0999'")
    with pytest.raises(SchemaError, match="revision 0999, newer than this version"):
        await migrate(settings)
    result = subprocess.run(
        [sys.executable, "-m", "causeflow", "serve", "--port", "0"],
        env=service_env({"CAUSEFLOW_DATA_DIR": str(tmp_path)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: the database schema is at revision 0999, newer than")
    assert lines[0].endswith("run the version that migrated it")
    with sqlite3.connect(settings.sqlite_path) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0999",)]
