"""Real OS processes of `python -m causeflow <role>`, and deployments of several of them.

`ServiceProcess` owns one process: its command, environment, log file and lifecycle (start with a
readiness wait, SIGTERM, SIGKILL, restart on the same port). `Deployment` owns a set of processes
sharing one database, plus the short CLI commands run with the same environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import orjson

from .keys import pg_key_env
from .ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SRC_DIR = REPO_ROOT / "src"
# The client library and the event models: a distribution of their own, built from this tree.
SDK_SRC_DIR = REPO_ROOT / "sdk/python/src"

# A worker has no HTTP endpoint; without another readiness signal we only make sure it survives
# its first moments (import errors, refused configuration) before handing it to the test.
WORKER_GRACE_SECONDS = 0.5


class CliError(subprocess.CalledProcessError):
    """A `python -m causeflow ...` command exited non-zero; the message carries its output."""

    def __str__(self) -> str:
        return (
            f"{' '.join(map(str, self.cmd))} exited with {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def service_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a service process: ours, minus any CAUSEFLOW_* settings, plus `extra`.

    Settings from the developer's shell are dropped so that every test states its own. The
    checkout's `src` and `sdk/python/src` go first on PYTHONPATH so the processes run this tree's
    code even when the virtualenv's editable installs point at another clone.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAUSEFLOW_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SRC_DIR), str(SDK_SRC_DIR), os.environ.get("PYTHONPATH", "")) if p
    )
    env.update(extra or {})
    return env


def _http_ok(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class ServiceProcess:
    """One OS process, started in its own session so the whole group can be killed at once."""

    role: str
    env: dict[str, str]
    port: int | None
    log_path: Path
    # Replaces the causeflow command (any "{port}" in it is substituted), for stand-in servers.
    argv: list[str] | None = None
    # GET this path until it answers 200; None waits for `ready_log` or a short grace instead.
    health_path: str | None = "/healthz"
    # A substring of the log that means ready (checked in output written since this start).
    ready_log: str | None = None
    host: str = "127.0.0.1"
    cwd: Path | None = None
    starts: int = field(default=0, init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log_offset: int = field(default=0, init=False, repr=False)

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{self.role} process has no port")
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def command(self) -> list[str]:
        if self.argv is not None:
            return [arg.replace("{port}", str(self.port)) for arg in self.argv]
        cmd = [sys.executable, "-m", "causeflow", self.role]
        if self.port is not None:
            cmd += ["--host", self.host, "--port", str(self.port)]
        return cmd

    def start(self, wait: bool = True, timeout: float = 30) -> None:
        if self.alive():
            raise RuntimeError(f"{self.role} (pid {self.pid}) is already running")
        cmd = self.command()
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- start #{self.starts}: {' '.join(cmd)}\n".encode())
            log.flush()
            self._log_offset = log.tell()
            self._proc = subprocess.Popen(
                cmd,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until the process is ready; on exit or timeout raise RuntimeError with its log."""
        proc = self._require_proc()
        deadline = time.monotonic() + timeout
        grace_until = time.monotonic() + WORKER_GRACE_SECONDS
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{self.role} exited with {proc.returncode} before it was ready\n"
                    f"{self.log_tail()}"
                )
            if self._is_ready(grace_until):
                return
            if time.monotonic() > deadline:
                self.kill9()
                raise RuntimeError(
                    f"{self.role} not ready after {timeout} s (killed)\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _is_ready(self, grace_until: float) -> bool:
        if self.health_path is not None and self.port is not None:
            return _http_ok(self.base_url + self.health_path, timeout=1.0)
        if self.ready_log is not None:
            return self.ready_log in self._log_since_start()
        return time.monotonic() >= grace_until

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float = 20) -> int:
        """Wait for the process to exit by itself and return its exit code."""
        return self._require_proc().wait(timeout)

    def kill9(self) -> None:
        """SIGKILL the whole process group (a crash: no cleanup runs) and reap it."""
        if self._proc is None:
            return
        self._kill_group()
        self._proc.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM the process, wait for it to exit and return its exit code.

        The signal goes to the main process only, as a process manager sends it; whatever it
        leaves behind in its group is then killed. If it does not exit in time it is killed and
        TimeoutError is raised, since a hung shutdown is a bug the caller wants to see.
        """
        proc = self._require_proc()
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                raise TimeoutError(
                    f"{self.role} (pid {proc.pid}) ignored SIGTERM for {timeout} s (killed)\n"
                    f"{self.log_tail()}"
                ) from None
        self._kill_group()
        return proc.returncode

    def restart(self, timeout: float = 30) -> None:
        """Stop (gracefully, if it is running) and start again on the same port."""
        if self.alive():
            self.terminate()
        self.start(wait=True, timeout=timeout)

    def log_tail(self, n: int = 60) -> str:
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        lines = data.decode("utf-8", errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def log_text(self) -> str:
        """The whole log, across restarts."""
        return self.log_path.read_bytes().decode("utf-8", errors="replace")

    def _log_since_start(self) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            return log.read().decode("utf-8", errors="replace")

    def _kill_group(self) -> None:
        # The group id is the leader's pid (new session); it lives on while any member does.
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def _require_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError(f"{self.role} process was never started")
        return self._proc


class Deployment:
    """Service processes sharing one database: SQLite under `tmp_path/data`, or PostgreSQL."""

    def __init__(
        self,
        tmp_path: Path,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.data_dir = tmp_path / "data"
        self.log_dir = tmp_path / "logs"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # as the service makes it (else its first start says so)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url
        self.env = service_env(
            {
                "CAUSEFLOW_DATA_DIR": str(self.data_dir),
                "CAUSEFLOW_DATABASE_URL": database_url or "",
                **pg_key_env(database_url),
                **(env or {}),
            }
        )
        self.processes: list[ServiceProcess] = []

    @property
    def servers(self) -> list[ServiceProcess]:
        return [p for p in self.processes if p.role == "serve"]

    @property
    def workers(self) -> list[ServiceProcess]:
        return [p for p in self.processes if p.role == "worker"]

    def env_with(self, overrides: dict[str, str | None]) -> dict[str, str]:
        """The deployment env with overrides applied; a None value removes the variable."""
        env = dict(self.env)
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = str(value)
        return env

    def run_cli(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 60,
        env: dict[str, str | None] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "causeflow", *args]
        result = subprocess.run(
            cmd,
            env=self.env_with(env or {}),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise CliError(result.returncode, cmd, result.stdout, result.stderr)
        return result

    def migrate(self) -> None:
        self.run_cli("migrate")

    def create_tenant(self, name: str = "acme") -> dict[str, str]:
        result = self.run_cli("tenant", "create", "--name", name, "--json")
        return parse_json_output(result.stdout)

    def add_server(
        self, *, start: bool = True, timeout: float = 30, **env_overrides: str | None
    ) -> ServiceProcess:
        return self._add("serve", free_port(), start, timeout, env_overrides)

    def add_worker(
        self, *, start: bool = True, timeout: float = 30, **env_overrides: str | None
    ) -> ServiceProcess:
        return self._add("worker", None, start, timeout, env_overrides)

    def _add(
        self,
        role: str,
        port: int | None,
        start: bool,
        timeout: float,
        env_overrides: dict[str, str | None],
    ) -> ServiceProcess:
        index = sum(1 for p in self.processes if p.role == role) + 1
        proc = ServiceProcess(
            role=role,
            env=self.env_with(env_overrides),
            port=port,
            log_path=self.log_dir / f"{role}-{index}.log",
            health_path="/healthz" if port is not None else None,
        )
        # Registered before starting, so stop_all also cleans up a process that failed to start.
        self.processes.append(proc)
        if start:
            proc.start(timeout=timeout)
        return proc

    def stop_all(self, timeout: float = 20) -> dict[str, int | None]:
        """Terminate every process (newest first), killing any that will not stop.

        Never raises: it runs in fixtures' `finally`, where an error would hide the test's own.
        Returns each process's exit code keyed by its log file name.
        """
        codes: dict[str, int | None] = {}
        for proc in reversed(self.processes):
            try:
                if proc.alive():
                    proc.terminate(timeout)
            except (TimeoutError, OSError, subprocess.SubprocessError):
                pass
            finally:
                proc.kill9()
            codes[proc.log_path.name] = proc.returncode
        return codes

    def __enter__(self) -> Deployment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


def parse_json_output(stdout: str) -> dict[str, str]:
    """The JSON object a CLI command printed: the whole output, else its last `{...}` line."""
    text = stdout.strip()
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        lines = [line for line in text.splitlines() if line.lstrip().startswith("{")]
        if not lines:
            raise ValueError(f"no JSON object in CLI output:\n{stdout}") from None
        value = orjson.loads(lines[-1])
    if not isinstance(value, dict):
        raise ValueError(f"CLI printed JSON that is not an object: {value!r}")
    return value
