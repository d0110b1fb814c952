"""docs/deploying.md's PostgreSQL roles, as written there: the SQL block runs as a superuser
(with unique names for the database and the two roles), the migrator creates the schema, and the
application role runs `serve`, `worker`, the short commands and `keys rotate`, but may not change
the schema.

- Before the schema is migrated, a process of the application role stops with one line that says
  to run `causeflow migrate` as the schema's owner.
- The migrator migrates in two steps (an upgrade): tables of the second step are usable by the
  application role too, through the default privileges.
- A serve and a worker of the application role take an incident from an inbound alert and
  deliver its event to a receiver; nothing in their logs is a permission error.
- The application role cannot create or drop a table.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from causeflow.db.engine import null_pool_engine
from causeflow.db.migrate import alembic_config
from tests.support.pg import PG_HOST, PG_PORT, admin_execute, pg_url, require_pg, run_sync
from tests.support.processes import Deployment
from tests.support.receiver import ThreadedReceiver
from tests.webhook.test_worker_processes import ENV

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
FIRST_STEP = "0004"  # an older head: the rest is migrated later, as an upgrade would


@contextmanager
def documented_roles() -> Iterator[dict[str, str]]:
    """The doc's SQL with unique names; yields their URLs; drops everything afterwards."""
    tag = secrets.token_hex(4)
    names = {"migrator": f"cf_mig_{tag}", "app": f"cf_app_{tag}", "db": f"cf_lp_{tag}"}
    text = (ROOT / "docs" / "deploying.md").read_text()
    match = re.search(r"<!-- postgres-roles -->\n```sql\n(.*?)```", text, flags=re.S)
    assert match, "docs/deploying.md lost its postgres-roles block"
    sql = match.group(1).replace("causeflow_migrator", names["migrator"])
    sql = re.sub(r"\bcauseflow_app\b", names["app"], sql)
    sql = re.sub(r"\bcauseflow\b", names["db"], sql)
    cluster, _, database = sql.partition(f"\\connect {names['db']}\n")
    assert database, "the block no longer connects to the new database"
    try:
        run_sync(_run_statements(cluster, pg_url()))
        run_sync(_run_statements(database, pg_url(names["db"])))
        yield {
            role: f"postgresql://{names[role]}:pw@{PG_HOST}:{PG_PORT}/{names['db']}"
            for role in ("migrator", "app")
        }
    finally:
        run_sync(admin_execute(f'DROP DATABASE IF EXISTS "{names["db"]}" WITH (FORCE)'))
        for role in ("app", "migrator"):
            run_sync(admin_execute(f'DROP ROLE IF EXISTS "{names[role]}"'))


async def _run_statements(sql: str, url: str) -> None:
    """One statement at a time, as psql sends them (CREATE DATABASE wants no transaction)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    for statement in "\n".join(lines).split(";"):
        if statement.strip():
            await admin_execute(statement, url)


async def _migrate_to(url: str, revision: str) -> None:
    from alembic import command

    engine = null_pool_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), revision))
    finally:
        await engine.dispose()


async def _ddl_refused(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    refused = []
    try:
        for statement in ("CREATE TABLE intruder (id int)", "DROP TABLE events"):
            try:
                await conn.execute(statement)
            except asyncpg.InsufficientPrivilegeError:
                refused.append(statement)
    finally:
        await conn.close()
    return refused


def _incident_delivered(server_url: str, creds: dict[str, str], receiver: ThreadedReceiver) -> None:
    headers = {"Authorization": f"Bearer {creds['adminToken']}"}
    with httpx.Client(base_url=server_url, headers=headers, timeout=10) as client:
        sub = client.post(
            "/v1/webhook-subscriptions",
            json={"url": receiver.url_for("/hook"), "events": ["incident.created"]},
        )
        assert sub.status_code == 201, sub.text
        alert = client.post(
            f"/v1/webhooks/{creds['tenantId']}/custom",
            json={"title": "Disk full on db-1", "severity": "high"},
            headers={"X-API-Key": creds["ingestKey"]},
        )
        assert alert.status_code == 202, alert.text
        incident = alert.json()["alerts"][0]["incidentId"]
    (got,) = receiver.wait_for_sync(1, timeout=20, path="/hook")
    assert got.json()["data"]["incidentId"] == incident


@pytest.mark.slow
def test_the_documented_roles_run_the_service(tmp_path: Path) -> None:
    require_pg()
    with documented_roles() as urls, ThreadedReceiver() as receiver:
        dep = Deployment(tmp_path, urls["app"], env=ENV)
        # Keys from a key file, so that `keys rotate` has somewhere to put the new one.
        dep.env = dep.env_with(
            {
                "CAUSEFLOW_SECRET_KEY": None,
                "CAUSEFLOW_JWT_SECRET": None,
                "CAUSEFLOW_KEY_FILE": str(tmp_path / "keys.json"),
            }
        )
        with dep:
            unmade = dep.run_cli("tenant", "create", "--name", "acme", "--json", check=False)
            assert unmade.returncode != 0 and "no store at PostgreSQL" in unmade.stderr
            refused = dep.run_cli(
                "tenant", "create", "--name", "acme", "--json", "--create", check=False
            )
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert "may not change the schema" in refused.stderr
            assert "causeflow migrate" in refused.stderr
            assert len(refused.stderr.strip().splitlines()) == 1

            run_sync(_migrate_to(urls["migrator"], FIRST_STEP))
            dep.run_cli("migrate", env={"CAUSEFLOW_DATABASE_URL": urls["migrator"]})

            creds = dep.create_tenant("acme")
            server = dep.add_server(CAUSEFLOW_RUN_WORKERS="false")
            worker = dep.add_worker(start=False)
            worker.ready_log = " running"
            worker.start()
            _incident_delivered(server.base_url, creds, receiver)
            dep.stop_all()
            rotated = dep.run_cli("keys", "rotate")
            assert rotated.returncode == 0
            logs = "".join(p.log_text() for p in dep.processes)
            assert "permission denied" not in logs.lower(), logs[-4000:]

        assert run_sync(_ddl_refused(urls["app"])) == [
            "CREATE TABLE intruder (id int)",
            "DROP TABLE events",
        ]
