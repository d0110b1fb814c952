"""Deleting a table's oldest rows a bounded batch at a time.

The retention job purges every feature's old rows in short transactions; each feature's
repository names its table and columns and calls this, so the statement's shape is written once
and the database layer still knows no feature.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, delete, select

from causeflow.db.engine import Tx


async def delete_older(
    tx: Tx, table: Table, *, key: str, time_col: str, cutoff: int, limit: int, where: Any = ()
) -> int:
    """Delete up to `limit` rows whose `time_col` is before `cutoff` (and `where` holds): those
    whose `key` is among the first `limit` such keys. Returns how many rows went."""
    key_col = table.c[key]
    doomed = select(key_col).where(table.c[time_col] < cutoff, *where).limit(limit)
    result = await tx.execute(delete(table).where(key_col.in_(doomed.scalar_subquery())))
    return result.rowcount or 0
