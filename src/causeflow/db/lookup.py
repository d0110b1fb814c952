"""Finding one of a tenant's rows by its prefixed id, or answering 404.

A value that is not an id of the right kind finds nothing without reaching SQL (so nothing odd,
such as a NUL that PostgreSQL refuses, is ever sent), and another tenant's id is not found.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, Table, bindparam, select

from causeflow import ids
from causeflow.db.conn import AnyRow, Conn
from causeflow.errors import NotFound

# table name -> its lookup, built once (building a statement costs more than running it)
_BY_ID: dict[str, Select[Any]] = {}


async def tenant_row(
    conn: Conn, table: Table, tenant_id: str, row_id: str, *, prefix: str, what: str
) -> AnyRow:
    """The row of `table` with this id in this tenant, else NotFound `<what>_not_found`."""
    row = None
    if ids.is_id(row_id, prefix):
        stmt = _BY_ID.get(table.name)
        if stmt is None:
            stmt = _BY_ID[table.name] = select(table).where(
                table.c.id == bindparam("b_id"), table.c.tenant_id == bindparam("b_tenant")
            )
        row = (await conn.execute(stmt, {"b_id": row_id, "b_tenant": tenant_id})).first()
    if row is None:
        raise NotFound(f"no such {what}", code=f"{what}_not_found")
    return row
