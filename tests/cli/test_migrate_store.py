"""`causeflow migrate-store` as an operator runs it: the copy's table of rows and checksums,
one-line refusals with exit code 2 (a target with rows, an unreachable target, a service still
running on the store), a dry run that writes nothing, exit code 1 when the copy differs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from causeflow.cli import app
from causeflow.schema import metadata
from tests.support.pg import fresh_database, require_pg, run_sync
from tests.support.ports import free_port
from tests.support.processes import Deployment

TABLE_LINE = re.compile(r"^(\w+)\s+(\d+)\s+([0-9a-f]{16})\s+ok$", re.M)


@pytest.fixture
def dep(tmp_path: Path):
    with Deployment(tmp_path) as deployment:
        yield deployment


def one_line_error(result: Any, *pieces: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for piece in pieces:
        assert piece in lines[0], lines[0]


async def _names(url: str) -> set[str]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


@pytest.mark.process
def test_the_store_is_copied_and_every_table_shown_verified(dep: Deployment):
    require_pg()
    dep.create_tenant("acme")
    with fresh_database("cf_migstore") as url:
        result = dep.run_cli("migrate-store", "--to", url, timeout=120)
        shown = {m.group(1): int(m.group(2)) for m in TABLE_LINE.finditer(result.stdout)}
        assert set(shown) == set(metadata.tables), result.stdout
        assert shown["tenants"] == 1 and shown["api_keys"] >= 2 and shown["events"] >= 1
        assert f"CAUSEFLOW_KEY_FILE={dep.data_dir / 'keys.json'}" in result.stderr
        assert "CAUSEFLOW_DATABASE_URL=postgresql://" in result.stderr

        again = dep.run_cli("migrate-store", "--to", url, check=False)
        one_line_error(again, "refused", "already holds rows", "tenants")


@pytest.mark.process
def test_a_dry_run_writes_nothing(dep: Deployment):
    require_pg()
    dep.create_tenant("acme")
    with fresh_database("cf_migstore") as url:
        result = dep.run_cli("migrate-store", "--to", url, "--dry-run")
        assert re.search(r"^tenants\s+1$", result.stdout, re.M), result.stdout
        assert "nothing written" in result.stderr
        assert run_sync(_names(url)) == set()


@pytest.mark.process
def test_an_unreachable_target_is_one_line(dep: Deployment):
    dep.create_tenant("acme")
    url = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/causeflow"
    result = dep.run_cli("migrate-store", "--to", url, check=False)
    one_line_error(result, "cannot use the target postgresql://postgres:***@127.0.0.1")
    assert "secret" not in result.stderr


@pytest.mark.process
def test_refused_while_the_service_runs_on_the_store(dep: Deployment):
    require_pg()
    dep.create_tenant("acme")
    dep.add_server()
    with fresh_database("cf_migstore") as url:
        result = dep.run_cli("migrate-store", "--to", url, check=False)
        one_line_error(result, "is running on this data directory", "stop it")
        assert run_sync(_names(url)) == set()


@pytest.mark.process
def test_no_store_to_copy(tmp_path: Path, dep: Deployment):
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    result = dep.run_cli(
        "migrate-store", "--from", missing, "--to", "postgresql://x@h/db", check=False
    )
    one_line_error(result, "there is no store at", "none.db")


@pytest.mark.integration
def test_a_copy_that_differs_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Something changes the target between the copy and the comparison: the table shows
    the mismatch and the exit code is 1."""
    import causeflow.db.copy as copy
    from tests.support.inproc import make_settings, running_service

    require_pg()
    settings = make_settings(tmp_path)

    async def fill() -> None:
        async with running_service(settings) as svc:
            await svc.tenant("acme")

    run_sync(fill())
    verify = copy.verify_copy

    async def tampered_then_verified(source: Any, target: Any, schema: Any, **kw: Any) -> Any:
        import asyncpg

        conn = await asyncpg.connect(target.database_url)
        await conn.execute("UPDATE tenants SET name = 'changed'")
        await conn.close()
        return await verify(source, target, schema, **kw)

    monkeypatch.setattr(copy, "verify_copy", tampered_then_verified)
    monkeypatch.setenv("CAUSEFLOW_DATA_DIR", str(settings.data_dir))
    with fresh_database("cf_migstore") as url:
        result = CliRunner().invoke(app, ["migrate-store", "--to", url])
    assert result.exit_code == 1, result.output
    assert re.search(r"^tenants\s+1\s+[0-9a-f]{16}!=[0-9a-f]{16}\s+MISMATCH$", result.stdout, re.M)
    assert "differs from the source in: tenants" in result.output


@pytest.mark.process
@pytest.mark.slow
def test_the_documented_switch_with_the_documented_roles(tmp_path: Path):
    """docs/deploying.md's way: copy as the schema owner, then serve as the application role
    with the SQLite store's key file; the old credentials work and new events are written."""
    from tests.db.test_least_privilege import documented_roles

    require_pg()
    with Deployment(tmp_path / "sqlite") as old:
        creds = old.create_tenant("acme")
        keys = old.data_dir / "keys.json"
        with documented_roles() as urls:
            old.run_cli("migrate-store", "--to", urls["migrator"], timeout=120)
            new = Deployment(tmp_path / "pg", urls["app"])
            new.env = new.env_with(
                {"CAUSEFLOW_SECRET_KEY": None, "CAUSEFLOW_JWT_SECRET": None}
                | {"CAUSEFLOW_KEY_FILE": str(keys)}
            )
            with new:
                server = new.add_server()
                _serves_the_copy(server.base_url, creds)


def _serves_the_copy(base_url: str, creds: dict[str, str]) -> None:
    import httpx

    from causeflow_sdk.models import sample_data

    key = {"X-API-Key": creds["apiKey"]}
    admin = {"Authorization": f"Bearer {creds['adminToken']}"}
    with httpx.Client(base_url=base_url, timeout=10) as client:
        before = client.get("/v1/events", headers=key)
        assert before.status_code == 200, before.text
        assert [e["event"] for e in before.json()["items"]] == ["tenant.created"]
        body = {"event": "incident.created", "data": sample_data("incident.created")}
        published = client.post("/v1/events", headers=key, json=body)
        assert published.status_code == 201, published.text
        after = client.get("/v1/events", headers=admin).json()["items"]
        assert [e["id"] for e in after] == [before.json()["items"][0]["id"], published.json()["id"]]
