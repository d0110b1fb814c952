"""Deleting rows so that the store's files no longer hold their bytes.

A plain DELETE on SQLite leaves the deleted bytes in free pages and in the WAL until they are
reused. For rows that must not survive in the file (secrets an earlier version stored), the
DELETE runs on a connection of its own with `secure_delete` on (freed content is overwritten
with zeros) and the WAL is then checkpointed and truncated. On PostgreSQL it is an ordinary
transaction.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import Delete
from sqlalchemy.dialects import sqlite

from causeflow.db.engine import Database
from causeflow.db.files import sqlite_file


async def delete_erased(db: Database, stmt: Delete) -> None:
    """Run `stmt` (a DELETE of plain values) and, on SQLite, overwrite what it freed."""
    path = sqlite_file(db.settings)  # None on PostgreSQL or in memory
    if path is None:
        async with db.transaction() as tx:
            await tx.execute(stmt)
        return
    compiled = stmt.compile(dialect=sqlite.dialect(), compile_kwargs={"render_postcompile": True})
    params = tuple(compiled.params[name] for name in compiled.positiontup or ())
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        con.execute("PRAGMA secure_delete=ON")
        con.execute("BEGIN IMMEDIATE")
        con.execute(str(compiled), params)
        con.execute("COMMIT")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
