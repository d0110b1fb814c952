"""Modes of the files that hold a store, whatever the umask.

The data directory is 0700; the SQLite database, its `-wal`, `-shm` and `-journal` files, the
serving lock and the key file are 0600. Files made by an older version (0755 / 0644) are
tightened at start, each with a log line. The database file is created here, empty and 0600,
before SQLite opens it: SQLite gives the WAL and shared-memory files its database's mode.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

from causeflow.settings import Settings

log = logging.getLogger("causeflow.files")

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")
LOCK_NAME = "serve.lock"
KEY_FILE_NAME = "keys.json"


def tighten(path: Path, mode: int) -> bool:
    """Set `path`'s permission bits to `mode` if it exists with others; True if changed."""
    try:
        current = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return False
    if current == mode:
        return False
    os.chmod(path, mode)
    log.warning("%s had mode %04o; set to %04o", path, current, mode)
    return True


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) and make it 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    tighten(path, DIR_MODE)


def private_file(path: Path) -> None:
    """Create `path` empty if it is absent; either way it ends up 0600."""
    tighten(path, FILE_MODE)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # the umask may have taken bits off; set them exactly
        finally:
            os.close(fd)


def sqlite_file(settings: Settings) -> Path | None:
    """The SQLite database file of these settings (None on PostgreSQL or in memory)."""
    url = settings.database_url
    if not url:
        return settings.sqlite_path
    for prefix in ("sqlite:///", "sqlite+aiosqlite:///"):
        if url.startswith(prefix):
            rest = url[len(prefix) :].split("?", 1)[0]
            return None if not rest or rest == ":memory:" else Path(rest)
    return None


def key_file_path(settings: Settings) -> Path | None:
    """Where the service's keys are kept: `CAUSEFLOW_KEY_FILE`, else `keys.json` in the data
    directory on SQLite; None on PostgreSQL without `CAUSEFLOW_KEY_FILE`."""
    if settings.key_file:
        return Path(settings.key_file)
    if settings.is_postgres:
        return None
    return settings.data_dir / KEY_FILE_NAME


def prepare_sqlite_store(settings: Settings) -> None:
    """The data directory 0700 and every file of the store 0600 (existing ones tightened),
    with the database file created first so SQLite's own files inherit its mode."""
    private_dir(settings.data_dir)
    for name in (LOCK_NAME, KEY_FILE_NAME):
        tighten(settings.data_dir / name, FILE_MODE)
    db_path = sqlite_file(settings)
    if db_path is None:
        return
    if not db_path.parent.exists():
        private_dir(db_path.parent)
    for suffix in SQLITE_SUFFIXES:
        tighten(Path(f"{db_path}{suffix}"), FILE_MODE)
    private_file(db_path)


def describe_store(settings: Settings) -> str:
    """The store these settings name, for a person: the SQLite file, or the database URL
    without its password."""
    from sqlalchemy.engine import URL, make_url

    db_path = sqlite_file(settings)
    if db_path is not None:
        return f"SQLite {db_path}"
    if not settings.is_postgres:
        return settings.database_url
    try:
        given = make_url(settings.database_url)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: show only its scheme
        return settings.database_url.split(":", 1)[0] + "://…"
    shown = URL.create(
        given.drivername, given.username, None, given.host, given.port, given.database
    )
    return "PostgreSQL " + shown.render_as_string()


def sqlite_store_exists(settings: Settings) -> bool:
    """Whether the SQLite file of these settings holds anything (its `-wal` counted): a file
    that is absent or empty is a store that does not exist yet."""
    db_path = sqlite_file(settings)
    if db_path is None:
        return True  # in memory: nothing is created on disk
    for suffix in ("", "-wal"):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(f"{db_path}{suffix}").st_size > 0:
                return True
    return False
