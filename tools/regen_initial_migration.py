"""Regenerate migration 0001 from the table metadata (allowed until the first release).

Run: .venv/bin/python tools/regen_initial_migration.py
"""

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "sdk/python/src"))
sys.path.insert(0, str(ROOT / "src"))

from alembic import command  # noqa: E402

from causeflow.db.engine import null_pool_engine  # noqa: E402
from causeflow.db.migrate import MIGRATIONS, alembic_config  # noqa: E402
from causeflow.schema import metadata  # noqa: E402


async def main() -> None:
    scratch = Path(tempfile.mkdtemp())
    for old in (MIGRATIONS / "versions").glob("*.py"):
        old.unlink()
    engine = null_pool_engine(f"sqlite+aiosqlite:///{scratch}/scratch.db")
    async with engine.connect() as conn:

        def generate(sync_conn: object) -> None:
            cfg = alembic_config(sync_conn, metadata)
            command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")

        await conn.run_sync(generate)
    await engine.dispose()


asyncio.run(main())
