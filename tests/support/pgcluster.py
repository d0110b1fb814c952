"""A private PostgreSQL cluster on its own port, for tests that stop or crash the database.

Built with the newest server binaries under /usr/lib/postgresql, trust auth, listening on
127.0.0.1 only, with fsync off (its data is thrown away). PostgreSQL refuses to run as root,
so when we are root the cluster's files belong to `postgres` and its programs run as that user.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg

from .pg import new_database_name, run_sync
from .ports import free_port, port_open

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
OS_USER = "postgres"

_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "fsync": "off",
    "full_page_writes": "off",
    "logging_collector": "off",
}


_STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


def find_pg_bin() -> Path:
    """The bin directory of the newest installed PostgreSQL server."""

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.name))

    candidates = [p for p in Path("/").glob(PG_BIN_GLOB.lstrip("/")) if (p / "initdb").exists()]
    if not candidates:
        raise RuntimeError(f"no PostgreSQL server binaries under {PG_BIN_GLOB}")
    return max(candidates, key=lambda p: version(str(p)))


def _as_root() -> bool:
    return os.geteuid() == 0


class PrivateCluster:
    """initdb and a postmaster in a throwaway directory; as a context manager, cleaned up."""

    def __init__(self, base_dir: Path | None = None) -> None:
        self.base_dir = base_dir
        self.bin_dir = find_pg_bin()
        self.root: Path | None = None
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self._root() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._root() / "sock"

    @property
    def log_path(self) -> Path:
        return self._root() / "postgres.log"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def init(self) -> None:
        self.root = self._make_root()
        self.port = free_port()
        self._run_pg(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.socket_dir.mkdir()
        _give_to_postgres(self.socket_dir)
        settings = {
            **_SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
        }
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# test cluster\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self, timeout: float = 30) -> None:
        """Run the postmaster as our own child process and wait until it accepts connections.

        Not through pg_ctl: pg_ctl leaves the postmaster to PID 1, which does not reap
        children on this machine, and the zombie's pid in a stale postmaster.pid would make
        PostgreSQL refuse to start after kill9(). As our direct child it is reaped by us.
        """
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError(f"cluster already running (pid {self._proc.pid})")
        cmd = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                **_postgres_user(),
                cwd=self._root(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with {self._proc.returncode}\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill9()
                raise RuntimeError(f"postgres not ready after {timeout} s\n{self.log_tail()}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        # The postmaster writes its state on the 8th line of postmaster.pid, as pg_ctl reads it.
        # A stale file from a killed postmaster also says "ready", hence the pid check.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        return (
            len(lines) >= 8
            and lines[0].strip() == str(self._postmaster_pid())
            and lines[7].strip() == "ready"
            and port_open(self.port)
        )

    def stop(self, mode: str = "fast", timeout: float = 30) -> None:
        """Shut down with `mode` (smart, fast, immediate) and wait until it is down."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        pid = self._postmaster_pid()
        if pid is not None:
            os.kill(pid, _STOP_SIGNALS[mode])
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise TimeoutError(f"postgres did not stop ({mode}) in {timeout} s") from None

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill9(self, timeout: float = 10) -> None:
        """SIGKILL the postmaster and all its processes at once: a crash, no checkpoint.

        The postmaster is frozen first so it cannot fork or restart children while we list
        and kill them. The next start() runs crash recovery.
        """
        pid = self._postmaster_pid()
        if pid is not None:
            os.kill(pid, signal.SIGSTOP)
            victims = [pid, *_children(pid)]
            for victim in victims:
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout
            while any(_running(v) for v in victims):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"postgres processes {victims} survived SIGKILL")
                time.sleep(0.02)
        if self._proc is not None:
            self._proc.wait(timeout)

    def create_database(self, name: str | None = None) -> str:
        """Create a database (a fresh random name when None) and return its URL."""
        name = name or new_database_name("cf_cluster")
        run_sync(self._execute(f'CREATE DATABASE "{name}"'))
        return self.url(name)

    async def _execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.url(), timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def close(self) -> None:
        """Stop it however possible and delete its files."""
        if self.root is None:
            return
        try:
            self.stop("immediate", timeout=10)
        except (TimeoutError, OSError):
            pass
        try:
            self.kill9()
            self._release_stale_shared_memory()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def _release_stale_shared_memory(self) -> None:
        # A killed postmaster leaves its small System V segment behind (the next start would
        # reclaim it); when the cluster is discarded instead, remove it as PostgreSQL would.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return
        fields = lines[6].split() if len(lines) >= 7 else []
        if len(fields) == 2 and fields[1].isdigit():
            subprocess.run(["ipcrm", "-m", fields[1]], capture_output=True, check=False)

    def __enter__(self) -> PrivateCluster:
        if self.root is None:
            self.init()
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("cluster not initialised")
        return self.root

    def _make_root(self) -> Path:
        parent = self.base_dir
        # As root, the postgres user must be able to reach the directory; pytest's tmp_path
        # sits under a root-only (0700) folder, so fall back to the system temp dir.
        if _as_root() and parent is not None and not _reachable_by_postgres(parent):
            parent = None
        root = Path(tempfile.mkdtemp(prefix="cf-pgcluster-", dir=parent))
        _give_to_postgres(root)
        return root

    def _run_pg(self, tool: str, *args: str, timeout: float = 60) -> None:
        cmd = [str(self.bin_dir / tool), *args]
        with tempfile.TemporaryFile() as out:
            result = subprocess.run(
                cmd,
                **_postgres_user(),
                cwd=self._root(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
            if result.returncode != 0:
                out.seek(0)
                output = out.read().decode(errors="replace")
                raise RuntimeError(
                    f"{tool} {' '.join(args)} failed ({result.returncode}):\n{output}\n"
                    f"--- server log ---\n{self.log_tail()}"
                )

    def _postmaster_pid(self) -> int | None:
        """The live postmaster's pid (our child), or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None


def _postgres_user() -> dict[str, Any]:
    """subprocess arguments that run the child as the postgres OS user when we are root.

    Done by subprocess itself (setuid in the child) rather than runuser: runuser stops itself
    when its child is stopped, and then would never reap a postmaster that kill9() froze.
    """
    if not _as_root():
        return {}
    return {"user": OS_USER, "group": pwd.getpwnam(OS_USER).pw_gid, "extra_groups": []}


def _give_to_postgres(path: Path) -> None:
    if _as_root():
        user = pwd.getpwnam(OS_USER)
        os.chown(path, user.pw_uid, user.pw_gid)


def _reachable_by_postgres(path: Path) -> bool:
    result = subprocess.run(
        ["test", "-x", str(path)],
        **_postgres_user(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may contain spaces; fields follow the last ")".
    return raw[raw.rindex(")") + 2 :].split()


def _running(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[1] == str(pid):
                found.append(int(entry.name))
    return found
