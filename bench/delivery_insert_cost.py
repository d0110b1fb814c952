"""The write cost of one index on `deliveries`: CPU per inserted delivery row with and without
`ix_deliveries_tenant_type_created`, on SQLite (this process's CPU) and PostgreSQL (the server
backend's CPU, from /proc), the two alternating, medians. Rows go in as the dispatcher writes
them: executemany batches of 500, one transaction each, on a migrated schema.

    .venv/bin/python bench/delivery_insert_cost.py              # 100,000 rows a run, 5 runs
    .venv/bin/python bench/delivery_insert_cost.py --rows 200000 --runs 3

Prints, never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine  # noqa: E402
from causeflow.db.migrate import migrate  # noqa: E402
from tests.support.inproc import make_settings  # noqa: E402
from tests.support.pg import fresh_database  # noqa: E402

BATCH = 500
INDEX = "ix_deliveries_tenant_type_created"
CREATE = f"CREATE INDEX {INDEX} ON deliveries (tenant_id, event_type, created_at)"
TYPES = ["incident.created", "incident.resolved", "remediation.proposed", "approval.requested"]
COLS = "id,tenant_id,subscription_id,event_id,event_type,status,attempts,manual,created_at,"
COLS += "updated_at,ordered"


def make_rows(n: int, tag: str) -> list[tuple[Any, ...]]:
    t0 = 1_790_000_000_000
    return [
        (f"msg_{tag}_{i:09d}", f"ten_{i % 3}", f"sub_{i % 9}", f"evt_{i // 3:09d}")
        + (TYPES[i % 4], "pending", 0, False, t0 + i, t0 + i, False)
        for i in range(n)
    ]


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sqlite_run(path: Path, with_index: bool, rows: list[tuple[Any, ...]]) -> float:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("DELETE FROM deliveries")
    db.execute(f"DROP INDEX IF EXISTS {INDEX}")
    if with_index:
        db.execute(CREATE)
    db.commit()
    insert = f"INSERT INTO deliveries ({COLS}) VALUES ({','.join('?' * 11)})"
    started = time.process_time()
    for i in range(0, len(rows), BATCH):
        db.executemany(insert, rows[i : i + BATCH])
        db.commit()
    used = time.process_time() - started
    db.close()
    return used / len(rows) * 1e6


async def pg_run(url: str, with_index: bool, rows: list[tuple[Any, ...]]) -> float:
    import asyncpg

    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    await conn.execute("TRUNCATE deliveries")
    await conn.execute(f"DROP INDEX IF EXISTS {INDEX}")
    if with_index:
        await conn.execute(CREATE)
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    marks = ",".join(f"${k + 1}" for k in range(11))
    insert = f"INSERT INTO deliveries ({COLS}) VALUES ({marks})"
    started = cpu_of(pid)
    for i in range(0, len(rows), BATCH):
        async with conn.transaction():
            await conn.executemany(insert, rows[i : i + BATCH])
    used = cpu_of(pid) - started
    await conn.close()
    return used / len(rows) * 1e6


async def measure(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp())
    lite = make_settings(tmp)
    await migrate(lite)
    got: dict[tuple[str, bool], list[float]] = {}
    with fresh_database("cf_bench") as url:
        await migrate(make_settings(tmp / "pg", url))
        for run in range(args.runs):
            for with_index in (False, True):
                rows = make_rows(args.rows, f"{run}{with_index:d}")
                got.setdefault(("SQLite", with_index), []).append(
                    sqlite_run(lite.sqlite_path, with_index, rows)
                )
                got.setdefault(("PostgreSQL", with_index), []).append(
                    await pg_run(url, with_index, rows)
                )
    print(machine())
    print(f"{args.rows:,} rows a run, batches of {BATCH}, {args.runs} runs; CPU us per row:")
    for backend in ("SQLite", "PostgreSQL"):
        without = statistics.median(got[(backend, False)])
        with_it = statistics.median(got[(backend, True)])
        print(
            f"  {backend:<11} without {without:6.1f}   with {with_it:6.1f}   "
            f"+{with_it - without:.1f} us ({with_it / without - 1:+.0%})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
