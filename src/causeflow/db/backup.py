"""Backup and restore of the embedded (SQLite) store: `causeflow backup` and `causeflow restore`.

A backup is taken online, while the service serves and writes, through SQLite's backup API in
one step: the copy reads the whole database inside one read transaction, so it is the store as
of one commit (WAL lets the service keep writing meanwhile). A copy in several steps would
start over at every write of the service and might never finish under load.

Neither command ever leaves a half-written file where a store or a backup is expected: each
writes a temporary file in the destination's directory, checks it, syncs it and renames it
into place. A restore also settles the old store's `-wal`, `-shm` and `-journal` files before
the rename (a stale write-ahead log beside a new database would be replayed into it).

The key file is not part of either: the store records only the ids of its sealing keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from alembic.script import ScriptDirectory

from causeflow.db.files import FILE_MODE, SQLITE_SUFFIXES, private_dir
from causeflow.db.migrate import alembic_config, migrate
from causeflow.settings import Settings

SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_SECONDS = 30.0


class BackupError(Exception):
    """A backup or restore refused or failed; the message is one line."""


@dataclass(frozen=True)
class Copied:
    path: Path
    revision: str  # the schema revision of the copy (after migrations, for a restore)
    size: int
    from_revision: str = ""  # a restore: the revision the backup was taken at


def known_revisions() -> list[str]:
    """This version's schema revisions, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _ro_uri(path: Path) -> str:
    return f"file:{quote(str(path.resolve()))}?mode=ro"


@contextlib.contextmanager
def _connect(target: str | Path, *, uri: bool = False) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(target, uri=uri, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def check_sqlite_file(path: Path, what: str) -> None:
    """`path` exists and starts like a SQLite database."""
    if str(path).startswith(("postgres:", "postgresql:", "postgresql+")):  # Path folds "//"
        raise BackupError(
            f"{what} is a PostgreSQL URL: this command works on SQLite files "
            "(back up and restore a PostgreSQL store with pg_dump and pg_restore)"
        )
    if path.is_dir():
        raise BackupError(f"{what} {path} is a directory, not a SQLite database file")
    if path.exists() and not path.is_file():  # a pipe or a device: reading it may never end
        raise BackupError(f"{what} {path} is not a regular file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        raise BackupError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise BackupError(f"cannot read {what} {path}: {exc.strerror}") from exc
    if head != SQLITE_MAGIC:
        raise BackupError(f"{what} {path} is not a SQLite database")


def store_revision(path: Path, what: str) -> str:
    """The schema revision of the CauseFlow store in `path` (read-only)."""
    check_sqlite_file(path, what)
    try:
        with _connect(_ro_uri(path), uri=True) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "alembic_version" not in tables:
                raise BackupError(
                    f"{what} {path} is a SQLite database but not a CauseFlow store "
                    "(it has no alembic_version table)"
                )
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error as exc:
        raise BackupError(f"{what} {path} cannot be read as a SQLite database: {exc}") from exc
    if len(rows) != 1:
        raise BackupError(f"{what} {path} has no single schema revision in alembic_version")
    return str(rows[0][0])


def check_known(revision: str, path: Path, what: str) -> None:
    known = known_revisions()
    if revision not in known:
        raise BackupError(
            f"{what} {path} is at schema revision {revision!r}, which this version of CauseFlow "
            f"does not know (it knows {known[0]} to {known[-1]}): restore it with the version "
            "that made it, or a newer one"
        )


def has_store(db_path: Path) -> bool:
    """Whether `db_path` holds a store (the empty file the service creates first does not)."""
    return any(
        Path(f"{db_path}{suffix}").exists() and Path(f"{db_path}{suffix}").stat().st_size > 0
        for suffix in ("", "-wal")
    )


def _temp_beside(target: Path, tag: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{tag}-", suffix=".tmp", dir=target.parent)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    return Path(name)


def _copy(source: str, source_is_uri: bool, dest: Path) -> None:
    """The whole database in one backup step (one read transaction: one commit point)."""
    with _connect(source, uri=source_is_uri) as src, _connect(dest) as dst:
        src.backup(dst, pages=-1)


def _check(path: Path, what: str) -> None:
    with _connect(path) as conn:
        verdict = str(conn.execute("PRAGMA quick_check").fetchone()[0])
    if verdict != "ok":
        lines = [line for line in verdict.splitlines() if not line.startswith("***")]
        raise BackupError(f"{what} fails SQLite's integrity check: {'; '.join(lines)}")


def _seal(path: Path, what: str) -> None:
    """Make `path` a database in one file (no write-ahead log), check it and sync it."""
    with _connect(path) as conn:
        conn.execute("PRAGMA journal_mode=DELETE").fetchall()
    _check(path, what)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(path: Path) -> None:
    for suffix in SQLITE_SUFFIXES:
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def _refuse_own_file(source: Path, target: Path, keep: Iterable[Path]) -> None:
    """`target` (through any link) is not the store, one of its side files, or a file of
    `keep` (the key file, the serving lock): `--force` replaces old backups, not those."""
    own = [Path(f"{source}{suffix}") for suffix in SQLITE_SUFFIXES] + list(keep)
    where = target.resolve()
    if any(where == path.resolve() for path in own):
        raise BackupError(
            f"refused: {target} is the store or one of its files; write the backup elsewhere"
        )


def backup_store(
    source: Path, target: Path, *, force: bool = False, keep: Iterable[Path] = ()
) -> Copied:
    """Copy the live store `source` into the file `target` (never one of the store's own
    files, nor one of `keep`)."""
    if not has_store(source):
        raise BackupError(f"there is no store at {source} to back up")
    revision = store_revision(source, "the store")
    _refuse_own_file(source, target, keep)
    if target.is_dir():
        raise BackupError(f"{target} is a directory: give the backup's file name")
    if target.exists() and not target.is_file():
        raise BackupError(f"{target} is not a regular file: give the backup's file name")
    if target.exists() and not force:
        raise BackupError(f"{target} exists; add --force to replace it")
    if not target.parent.is_dir():
        raise BackupError(f"the directory {target.parent} does not exist")
    tmp = _temp_beside(target, "backup")
    try:
        _copy(str(source), False, tmp)
        _seal(tmp, f"the copy of {source}")
        os.replace(tmp, target)
    except sqlite3.Error as exc:
        raise BackupError(f"the backup failed: {exc}") from exc
    finally:
        _discard(tmp)
    _sync_dir(target.parent)
    return Copied(target, revision, target.stat().st_size)


def _settle_old(db_path: Path) -> None:
    """Fold the old store's write-ahead log (or hot journal) into its file, then remove the
    side files, so that the rename replaces the whole store and nothing old is replayed."""
    if db_path.exists():
        with contextlib.suppress(sqlite3.Error), _connect(db_path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            conn.execute("PRAGMA journal_mode=DELETE").fetchall()
    for suffix in SQLITE_SUFFIXES[1:]:
        with contextlib.suppress(FileNotFoundError):
            Path(f"{db_path}{suffix}").unlink()


def check_restorable(source: Path, db_path: Path, *, force: bool) -> str:
    """Refuse what a restore would refuse, before anything is touched; the backup's revision."""
    revision = store_revision(source, "the backup")
    check_known(revision, source, "the backup")
    if has_store(db_path) and not force:
        raise BackupError(f"{db_path} already holds a store; add --force to replace it")
    return revision


def _migrate_forward(settings: Settings, path: Path) -> None:
    staged = settings.model_copy(update={"database_url": f"sqlite:///{path}"})
    try:
        asyncio.run(migrate(staged))
    except Exception as exc:  # alembic's and the driver's errors alike: one line, nothing left
        raise BackupError(f"migrating the backup to this version failed: {exc}") from exc


def restore_store(
    source: Path, settings: Settings, db_path: Path, *, force: bool = False
) -> Copied:
    """Put the backup `source` in place as the store `db_path`, migrated to this version.

    The caller holds the store's serving lock: no service runs on it meanwhile.
    """
    from_revision = check_restorable(source, db_path, force=force)
    private_dir(db_path.parent)
    tmp = _temp_beside(db_path, "restore")
    try:
        _copy(_ro_uri(source), True, tmp)
        _check(tmp, f"the backup {source}")
        _migrate_forward(settings, tmp)
        revision = store_revision(tmp, "the restored store")
        _seal(tmp, "the restored store")
        _settle_old(db_path)
        os.replace(tmp, db_path)
    except sqlite3.Error as exc:
        raise BackupError(f"restoring {source} failed: {exc}") from exc
    finally:
        _discard(tmp)
    _sync_dir(db_path.parent)
    return Copied(db_path, revision, db_path.stat().st_size, from_revision)
