"""The whole schema: every feature's tables, registered on the one `MetaData`.

Features declare their tables in their own `tables.py`; this module (next to the composition
root, which imports it) gathers them so `metadata` is complete for Alembic's autogenerate
(`tools/regen_initial_migration.py`) and the migration tests. The database layer itself knows
no feature.
"""

from causeflow.api import tables as _api  # noqa: F401
from causeflow.auth import tables as _auth  # noqa: F401
from causeflow.db.metadata import metadata
from causeflow.event import tables as _event  # noqa: F401
from causeflow.incident import tables as _incident  # noqa: F401
from causeflow.ingest import tables as _ingest  # noqa: F401
from causeflow.integration import tables as _integration  # noqa: F401
from causeflow.ratelimit import tables as _ratelimit  # noqa: F401
from causeflow.remediation import tables as _remediation  # noqa: F401
from causeflow.tenant import tables as _tenant  # noqa: F401
from causeflow.trigger import tables as _trigger  # noqa: F401
from causeflow.user import tables as _user  # noqa: F401
from causeflow.webhook import tables as _webhook  # noqa: F401

__all__ = ["metadata"]
