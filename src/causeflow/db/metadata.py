"""The one SQLAlchemy `MetaData` every feature's `tables.py` registers its tables on.

Column conventions, the same on SQLite and PostgreSQL: times are BIGINT epoch milliseconds,
JSON documents are TEXT written with orjson, booleans are BOOLEAN, ids are prefixed TEXT.
"""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)


# `info` of a column holding values sealed with the secret box (alone or inside JSON):
# `causeflow keys rotate` seals every such column's values again under a new key.
SEALED: dict[str, object] = {"sealed": True}
